//! Every cross-crate end-to-end test, in one test binary.
//!
//! One binary instead of one per file: each binary links the AWS SDK and kube-rs (hundreds of megabytes in a
//! debug build), so eight binaries cost eight links and gigabytes of disk; one shares a single link and a single
//! emulator process. Tests stay isolated by account (AWS) and namespace (Kubernetes), so they run in parallel.

// Tests say on stdout which Kubernetes server they ran on, and when they skip and why.
#![allow(clippy::print_stdout)]

mod access_awsauth;
mod access_entries;
mod access_iam;
mod eks_emulation;
mod eksctl_examples;
mod env_faults;
mod env_lifecycle;
mod examples;
mod facade;
mod fake_kube;
mod kube_conformance;
mod kube_faults;
mod migrate;
mod net_lifecycle;
mod net_resilience;
mod net_specs;
mod operator;
mod real_kube;
mod real_migration;
mod recover;
