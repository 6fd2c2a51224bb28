//! The whole environment as one plan (feature `aws`): network, IAM, the EKS cluster with nodegroups and
//! addons, access entries and Pod Identity associations; `up` until converged, `upgrade` with preflight,
//! and `down` in dependency order with a leftover report. This is what `cargo xtask plan|up|down|upgrade`
//! and the demo call; a service embedding eksodus calls the same.
//!
//! **Rounds.** Some resources cannot be planned before others exist: IRSA roles need the cluster's OIDC
//! issuer, and addons that use them need the roles. [`Environment::plan`] lists those as `deferred`;
//! [`Environment::up`] applies, plans again, and stops when a plan is empty (at most [`MAX_ROUNDS`]), so a
//! finished `up` has itself shown that a re-plan is empty.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use serde::Serialize;

use eksodus_access::entries::AccessEntries;
use eksodus_access::iam::Iam;
use eksodus_core::aws::{without_sdk_retries, Calls};
use eksodus_core::engine::{ApplyOptions, ApplyReport, Engine, Router};
use eksodus_core::events::{Event, EventSink};
use eksodus_core::plan::{Action, Plan};
use eksodus_core::spec::{EnvironmentSpec, FieldErrors};
use eksodus_net::ec2::Network;

use crate::addons;
use crate::eks::{self, ClusterInfo, Eks, Found, Inputs, CLUSTER_KEY};
use crate::kube_side::{self, Cleanup};
use crate::token::Credentials;
use crate::upgrade::Preflight;
use crate::Error;

/// Plan-apply rounds `up` makes before giving up on convergence.
pub const MAX_ROUNDS: usize = 4;

/// Checks a spec offline: structure, the network layout, instance types, addon roles. No AWS call.
pub fn validate(spec: &EnvironmentSpec) -> Result<(), Error> {
    let errs = eksodus_net::validate(spec);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(Error::Core(eksodus_core::Error::Invalid(FieldErrors(errs))))
    }
}

/// One plan of the whole environment.
#[derive(Debug, Clone, Serialize)]
pub struct EnvPlan {
    /// The steps, across components.
    pub plan: Plan,
    /// Resources that wait for a later round, with why.
    pub deferred: Vec<String>,
    /// Things worth knowing that change nothing.
    pub notes: Vec<String>,
    /// The cluster as found.
    pub cluster: Option<ClusterInfo>,
    /// Account ID.
    pub account: String,
}

impl EnvPlan {
    /// Whether nothing would change and nothing waits.
    pub fn is_converged(&self) -> bool {
        self.plan.is_empty() && self.deferred.is_empty()
    }
}

/// One round of `up`.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// What was planned.
    pub plan: EnvPlan,
    /// What applying it did.
    pub report: ApplyReport,
}

/// What `up` did.
#[derive(Debug, Clone, Serialize)]
pub struct UpReport {
    /// Rounds that changed something.
    pub rounds: Vec<Round>,
    /// The final, empty plan.
    pub converged: EnvPlan,
    /// ENIConfig objects applied in the cluster (custom networking).
    pub eni_configs: Vec<String>,
    /// Keys of the VPC CNI's ConfigMap (`kube-system/amazon-vpc-cni`) this run set: `enable-windows-ipam` when
    /// the spec has Windows nodegroups and it was not on yet.
    pub cni_config: Vec<String>,
    /// What changed in `kube-system/aws-auth` (the spec's mappings and accounts, merged with everyone else's).
    pub aws_auth: Vec<eksodus_access::awsauth::Change>,
    /// What happened to the Kubernetes service accounts of the spec's IRSA and Pod Identity roles.
    pub service_accounts: Vec<eksodus_access::serviceaccounts::Change>,
    /// Kubernetes work skipped, and why.
    pub kube_skipped: Option<String>,
}

/// What `down` did.
#[derive(Debug, Clone, Serialize)]
pub struct DownReport {
    /// The Kubernetes-side cleanup, when the cluster was reachable.
    pub cleanup: Option<Cleanup>,
    /// Kubernetes work skipped, and why.
    pub kube_skipped: Option<String>,
    /// The load balancers and target groups the cluster's controllers made in the VPC, removed by their tags.
    pub swept: Option<crate::sweep::Swept>,
    /// What `down` could not check or deliberately leaves, for a person to look at (volumes with data, the
    /// Kubernetes objects of an unreachable cluster).
    pub not_checked: Vec<String>,
    /// The destroy plan.
    pub plan: Plan,
    /// What applying it did (its `leftovers` are what could not be removed, or was removed though foreign).
    pub report: ApplyReport,
    /// Tagged resources still there afterwards.
    pub remaining: Vec<String>,
}

/// What `upgrade` did.
#[derive(Debug, Clone, Serialize)]
pub struct UpgradeReport {
    /// Each step's preflight.
    pub preflights: Vec<Preflight>,
    /// The upgrade plan.
    pub plan: Plan,
    /// What applying it did.
    pub report: Option<ApplyReport>,
}

/// The calls the environment makes itself (beside its reconcilers'), for the least-privilege policy: the
/// account, and the volumes the cluster's CSI driver left (reported by `down`, never deleted).
pub const ACTIONS: &[&str] = &["sts:GetCallerIdentity", "ec2:DescribeVolumes"];

/// What `down` will remove: the plan, and what it needs to know to run it.
#[derive(Debug, Clone, Serialize)]
pub struct DestroyPlan {
    /// The removal plan, in dependency order.
    pub plan: Plan,
    /// The cluster as found (owned or not), for the Kubernetes-side cleanup before it goes.
    pub cluster: Option<ClusterInfo>,
    /// The AWS account of the cluster (empty when there is none).
    pub account: String,
}

/// How the Kubernetes side is reached.
#[derive(Clone)]
pub enum KubeAccess {
    /// Through the cluster's endpoint with a native token made from these credentials (a snapshot: use
    /// [`KubeAccess::Provider`] for temporary credentials that outlive it).
    Token(Credentials),
    /// Through the cluster's endpoint with native tokens signed with credentials asked of this provider for
    /// every new token, so refreshed temporary credentials (SSO, assumed roles, instance roles) keep working.
    Provider(aws_credential_types::provider::SharedCredentialsProvider),
    /// A ready client (tests, the demo's fake API server, a caller with its own configuration).
    Client(kube::Client),
    /// Not at all: Kubernetes-side steps are skipped and reported.
    None,
}

impl std::fmt::Debug for KubeAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KubeAccess::Token(_) => "Token",
            KubeAccess::Provider(_) => "Provider",
            KubeAccess::Client(_) => "Client",
            KubeAccess::None => "None",
        })
    }
}

/// One environment: its spec and a reconciler per component.
#[derive(Debug, Clone)]
pub struct Environment {
    /// The spec.
    pub spec: EnvironmentSpec,
    /// Network reconciler.
    pub network: Network,
    /// IAM reconciler.
    pub iam: Iam,
    /// EKS reconciler.
    pub eks: Eks,
    /// KMS reconciler (the secrets key eksodus creates when the spec names none).
    pub kms: crate::kms::Kms,
    /// CloudWatch Logs reconciler (the control plane's log group, when the spec sets its retention).
    pub logs: crate::logs::Logs,
    ec2: aws_sdk_ec2::Client,
    eks_client: aws_sdk_eks::Client,
    sts: aws_sdk_sts::Client,
    calls: Calls,
    sweeper: crate::sweep::Sweeper,
    account: std::sync::OnceLock<String>,
    options: ApplyOptions,
    kube: KubeAccess,
    force: bool,
}

/// An access error as the environment's: AWS failures stay [`Error::Aws`] (code and request ID on them), the
/// rest ([`Lockout`](eksodus_access::Error::Lockout), [`Invalid`](eksodus_access::Error::Invalid)) stay typed
/// under [`Error::Access`].
fn access_err(e: eksodus_access::Error) -> Error {
    match e {
        eksodus_access::Error::Aws(s) => Error::Aws(s),
        other => Error::Access(other),
    }
}

/// Builds an [`Environment`]: `Environment::builder(spec).aws(&conf).build()`, with optional credentials for
/// the cluster's tokens, Kubernetes access, engine options and the lockout override.
#[derive(Debug)]
pub struct EnvironmentBuilder {
    spec: EnvironmentSpec,
    conf: Option<SdkConfig>,
    options: ApplyOptions,
    kube: Option<KubeAccess>,
    credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
    force: bool,
}

impl EnvironmentBuilder {
    /// The AWS configuration (region, endpoint, credentials). Its SDK retry settings are replaced: eksodus
    /// retries every call itself and knows which ones may not be sent twice.
    pub fn aws(mut self, conf: &SdkConfig) -> Self {
        self.conf = Some(conf.clone());
        self
    }

    /// The credentials that sign the cluster's tokens, asked again for every token (default: `aws`'s own
    /// provider).
    pub fn credentials(mut self, provider: aws_credential_types::provider::SharedCredentialsProvider) -> Self {
        self.credentials = Some(provider);
        self
    }

    /// How the cluster's API server is reached (default: through its endpoint with tokens from
    /// [`EnvironmentBuilder::credentials`]; [`KubeAccess::None`] skips the Kubernetes side).
    pub fn kube(mut self, kube: KubeAccess) -> Self {
        self.kube = Some(kube);
        self
    }

    /// Engine options (concurrency, retries, waits).
    pub fn options(mut self, options: ApplyOptions) -> Self {
        self.options = options;
        self
    }

    /// Skips the access-entry lockout guard.
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// Validates the spec and builds the environment (no AWS call).
    pub fn build(self) -> Result<Environment, Error> {
        let conf = self.conf.ok_or_else(|| Error::Invalid {
            what: "environment builder".into(),
            message: "no AWS configuration: call .aws(&SdkConfig) first".into(),
        })?;
        let kube = match (self.kube, self.credentials.or_else(|| conf.credentials_provider())) {
            (Some(k), _) => k,
            (None, Some(p)) => KubeAccess::Provider(p),
            (None, None) => KubeAccess::None,
        };
        Ok(Environment::new(&conf, self.spec, self.options)?.with_kube(kube).force(self.force))
    }
}

impl Environment {
    /// A builder for an environment of `spec`.
    pub fn builder(spec: EnvironmentSpec) -> EnvironmentBuilder {
        EnvironmentBuilder {
            spec,
            conf: None,
            options: ApplyOptions::default(),
            kube: None,
            credentials: None,
            force: false,
        }
    }

    /// An environment for `spec` on the AWS `conf` points at. Validates the spec first (no AWS call).
    ///
    /// Whatever retry settings `conf` has, the SDK's own retries are turned off ([`without_sdk_retries`]):
    /// eksodus retries every call itself and knows which ones may not be sent twice. Every call is paced by the
    /// process's rate limiter for its service at `conf`'s region and endpoint.
    pub fn new(conf: &SdkConfig, spec: EnvironmentSpec, options: ApplyOptions) -> Result<Self, Error> {
        validate(&spec)?;
        let conf = &without_sdk_retries(conf);
        let ec2 = aws_sdk_ec2::Client::new(conf);
        let eks_client = aws_sdk_eks::Client::new(conf);
        Ok(Environment {
            network: Network::new(ec2.clone(), &spec).with_retry(options).with_calls(Calls::new("ec2", conf)),
            iam: Iam::new(aws_sdk_iam::Client::new(conf), &spec)
                .with_retry(options)
                .with_calls(Calls::new("iam", conf)),
            eks: Eks::new(eks_client.clone(), ec2.clone(), &spec)
                .with_retry(options)
                .with_calls(Calls::new("eks", conf))
                .with_ec2_calls(Calls::new("ec2", conf)),
            kms: crate::kms::Kms::new(aws_sdk_kms::Client::new(conf), &spec)
                .with_retry(options)
                .with_calls(Calls::new("kms", conf)),
            logs: crate::logs::Logs::new(aws_sdk_cloudwatchlogs::Client::new(conf), &spec)
                .with_retry(options)
                .with_calls(Calls::new("logs", conf)),
            ec2,
            eks_client,
            sts: aws_sdk_sts::Client::new(conf),
            calls: Calls::new("sts", conf).with_policy(options.calls),
            sweeper: crate::sweep::Sweeper::new(conf).with_policy(options.calls),
            account: std::sync::OnceLock::new(),
            spec,
            options,
            kube: KubeAccess::None,
            force: false,
        })
    }

    /// A client for the environment's cluster as [`KubeAccess`] says (`None` when it says not to reach it).
    pub async fn kube(&self) -> Result<Option<kube::Client>, Error> {
        // boxed: the work's future is large, and a caller awaiting it inline would carry it on its own stack
        Box::pin(self.kube_unboxed()).await
    }

    async fn kube_unboxed(&self) -> Result<Option<kube::Client>, Error> {
        let found = self.eks.discover(&HashMap::new()).await?;
        match found.cluster.as_ref().filter(|c| c.owned) {
            Some(info) => self.kube_client(info).await,
            None => Err(Error::NotReady {
                what: format!("environment {}", self.spec.name),
                message: "it owns no cluster yet (run up first)".into(),
            }),
        }
    }

    /// How to reach the cluster's API server (for ENIConfigs, the pre-delete cleanup, the deprecated-API check).
    pub fn with_kube(mut self, kube: KubeAccess) -> Self {
        self.kube = kube;
        self
    }

    /// Skips the access-entry lockout guard.
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    fn entries(&self, account: &str, mode: Option<eksodus_core::spec::AuthenticationMode>) -> AccessEntries {
        AccessEntries::new(self.eks_client.clone(), &self.spec)
            .with_retry(self.options)
            .with_calls(self.eks.calls().clone())
            .with_account(account)
            .with_known_mode(mode)
            .force(self.force)
    }

    async fn account(&self, cluster: Option<&ClusterInfo>) -> Result<String, Error> {
        if let Some(c) = cluster.filter(|c| !c.account.is_empty()) {
            return Ok(c.account.clone());
        }
        // an environment's credentials do not change account: asked once
        if let Some(a) = self.account.get() {
            return Ok(a.clone());
        }
        let r = eksodus_core::engine::retry(&self.options, || async {
            self.calls
                .read(|| self.sts.get_caller_identity().send())
                .await
                .map_err(|e| eksodus_core::aws::step_error("STS GetCallerIdentity", e))
        })
        .await?;
        let a = r.account().filter(|a| !a.is_empty()).map(str::to_string).ok_or_else(|| Error::Invalid {
            what: "STS GetCallerIdentity".into(),
            message: "the answer holds no account ID".into(),
        })?;
        let _ = self.account.set(a.clone());
        Ok(a)
    }

    /// Plans the whole environment. Fails, before any write, on specs EKS cannot take (a version it does not
    /// offer, a skipped or backwards minor version, an addon version not offered for the cluster's version).
    pub async fn plan(&self) -> Result<EnvPlan, Error> {
        // boxed: the work's future is large, and a caller awaiting it inline would carry it on its own stack
        Box::pin(self.plan_unboxed()).await
    }

    async fn plan_unboxed(&self) -> Result<EnvPlan, Error> {
        // `network.azs: N` stands for the region's first N zones, asked of EC2 (letters alone name zones
        // some regions do not have)
        let zoned = self.network.resolve_zones(&self.spec).await?;
        let spec = zoned.as_ref().unwrap_or(&self.spec);
        let by_cidr = self.resolve_subnet_cidrs(spec).await?;
        let spec = by_cidr.as_ref().unwrap_or(spec);
        let mut notes = Vec::new();
        // reads that do not depend on each other run together: the network, the KMS key and IAM first (EKS's
        // discovery needs the IDs they map to keys), then EKS, then what depends on the cluster
        let want_kms = crate::kms::wanted(spec).is_some();
        let no_keys = HashMap::new();
        // within EKS: the cluster first; then its nodegroups and addons, and its access entries and Pod Identity
        // associations, all at once (the entries need only the cluster's account and authentication mode)
        let eks_reads = async {
            let cluster = self.eks.describe().await?;
            let owned_mode = cluster.as_ref().and_then(|c| {
                let t: BTreeMap<String, String> =
                    c.tags().map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
                let account = c.arn()?.split(':').nth(4).filter(|a| !a.is_empty())?.to_string();
                let mode = c
                    .access_config()
                    .and_then(|a| a.authentication_mode())
                    .and_then(|m| eksodus_core::spec::AuthenticationMode::parse(m.as_str()));
                eksodus_core::tags::is_owned(&t, &spec.name, eks::COMPONENT).then_some((account, mode))
            });
            let access = async {
                match &owned_mode {
                    Some((account, mode)) => {
                        let entries = self.entries(account, *mode);
                        Ok(Some(entries.discover().await.map_err(Error::Aws)?))
                    }
                    None => Ok::<_, Error>(None),
                }
            };
            let (found, access) = tokio::try_join!(self.eks.discover_from(cluster, &no_keys), access)?;
            Ok::<_, Error>((found, access))
        };
        let want_logs = crate::logs::wanted(spec).is_some();
        let ((net_plan, net_found), kms_found, logs_found, iam_found, (mut found, access_found)) = tokio::try_join!(
            async { self.network.plan_with_discovery(spec).await.map_err(Error::from) },
            async {
                if want_kms {
                    self.kms.discover().await.map_err(Error::Aws)
                } else {
                    Ok(vec![])
                }
            },
            async {
                if want_logs {
                    self.logs.discover().await.map_err(Error::Aws)
                } else {
                    Ok(Default::default())
                }
            },
            async { self.iam.discover(spec).await.map_err(Error::Aws) },
            eks_reads,
        )?;
        let mut ids_to_keys: HashMap<String, String> = net_found.keys.clone();
        for o in &kms_found {
            ids_to_keys.insert(o.physical_id.clone(), o.key.clone());
        }
        found.rekey(&ids_to_keys);
        if let Some(c) = &found.cluster {
            if !c.owned {
                return Err(Error::Spec {
                    field: "name".into(),
                    message: format!(
                        "an EKS cluster named {} exists and is not owned by this environment; eksodus will not adopt or change it",
                        c.name
                    ),
                });
            }
        }
        // nodegroups that name what their instances offer get the types that offer it, from here on
        let resolved = self.resolve_selectors(spec, &found, &mut notes).await?;
        let spec = resolved.as_ref().unwrap_or(spec);
        let owned_cluster = found.cluster.as_ref().filter(|c| c.owned);
        let account = self.account(owned_cluster).await?;
        let issuer = owned_cluster
            .and_then(|c| c.oidc_issuer.clone())
            .or_else(|| spec.access.as_ref().and_then(|a| a.oidc_issuer.clone()));
        let iam_desired = self.iam.desired(spec, issuer.as_deref(), &account);
        let iam_plan = eksodus_core::plan::diff(&iam_desired, &iam_found);
        let iam_keys: BTreeSet<String> = iam_desired.iter().map(|d| d.key.clone()).collect();
        let mut deferred = Vec::new();
        if issuer.is_none() {
            let n = spec.access.as_ref().map(|a| a.service_accounts.len()).unwrap_or(0)
                + usize::from(spec.access.as_ref().is_some_and(|a| a.iam.cni_irsa));
            if n > 0 || spec.cluster.as_ref().is_some_and(|c| c.addons.iter().any(|a| a.has_policies())) {
                deferred.push("oidc and role/irsa/*: need the cluster's OIDC issuer".to_string());
            }
        }

        let mut plan = net_plan;
        plan.extend(iam_plan);
        plan.extend(eksodus_core::plan::diff(&self.kms.desired(spec), &kms_found));
        let logs_desired = self.logs.desired(spec, &logs_found);
        if let Some(name) = &logs_found.foreign {
            notes.push(format!(
                "log group {name} exists and is not this environment's (EKS makes it when eksodus has not): its retention is left as it is and down leaves it"
            ));
        }
        plan.extend(eksodus_core::plan::diff(&logs_desired, &logs_found.observed));
        if let Some(c) = &spec.cluster {
            let version = match owned_cluster {
                None => c.version.clone(),
                Some(cl) => {
                    check_version(&c.version, &cl.version)?;
                    cl.version.clone()
                }
            };
            let needs_catalogue = c.addons.iter().any(|a| match found.addons.get(&a.name) {
                None => true,
                Some(installed) => a.version.as_deref().is_some_and(|v| v != installed),
            });
            // the vCPUs decide max pods: read when a nodegroup is made (its max pods are fixed then), and on
            // every plan when a template eksodus makes carries max pods in its user data
            let creating_ngs = c
                .nodegroups
                .iter()
                .any(|n| !found.nodegroups.contains_key(&n.name) || (n.owns_template() && eks::sets_max_pods(spec)));
            let types: Vec<String> = c.nodegroups.iter().flat_map(|n| n.instance_types.clone()).collect();
            let amis: Vec<String> = c.nodegroups.iter().filter_map(|n| n.ami.clone()).collect();
            let (catalogue, vcpus, images) = tokio::try_join!(
                async {
                    if needs_catalogue {
                        self.eks.catalogue(&version).await.map(Some)
                    } else {
                        Ok(None)
                    }
                },
                async {
                    // a failed lookup is an error, not a silent default: without vCPUs the max-pods ceiling of
                    // prefix delegation (110 below 30 vCPUs, 250 from there) would be guessed
                    Ok::<_, Error>(if creating_ngs && !types.is_empty() {
                        eksodus_net::ec2::describe_vcpus(&self.ec2, &types).await?
                    } else {
                        BTreeMap::new()
                    })
                },
                async {
                    if amis.is_empty() {
                        Ok(BTreeMap::new())
                    } else {
                        eksodus_net::ec2::describe_images(&self.ec2, &amis).await.map_err(Error::from)
                    }
                },
            )?;
            // a custom AMI that is not there, or is built for the other architecture, is refused before
            // anything is made (its template would be made, and its nodes would never join)
            for (i, n) in c.nodegroups.iter().enumerate() {
                let Some(ami) = &n.ami else { continue };
                let field = format!("cluster.nodegroups[{i}].ami");
                let Some(arch) = images.get(ami) else {
                    return Err(Error::Spec {
                        field,
                        message: format!("EC2 shows no AMI {ami} to this account in {}", spec.region),
                    });
                };
                let want = if n.ami_type.as_deref().is_some_and(|t| t.contains("ARM_64")) { "arm64" } else { "x86_64" };
                if !arch.is_empty() && arch != want {
                    return Err(Error::Spec {
                        field,
                        message: format!(
                            "{ami} is an {arch} image and ami_type {} runs {want}",
                            n.ami_type.as_deref().unwrap_or(eks::DEFAULT_AMI_TYPE)
                        ),
                    });
                }
            }
            let layout = match spec.network.existing {
                None => Some(eksodus_net::layout::plan(spec)?),
                Some(_) => None,
            };
            let (mut private, mut public, mut cluster_subnets) = (BTreeMap::new(), BTreeMap::new(), Vec::new());
            match (&layout, &spec.network.existing) {
                (Some(l), _) => {
                    for s in &l.subnets {
                        match s.tier {
                            eksodus_net::layout::Tier::Private => {
                                private.insert(s.az.clone(), s.key());
                            }
                            eksodus_net::layout::Tier::Public => {
                                public.insert(s.az.clone(), s.key());
                            }
                            _ => {}
                        }
                    }
                    // EKS puts no control plane interface in a Local Zone
                    let regional = |m: &BTreeMap<String, String>| -> Vec<String> {
                        m.iter().filter(|(az, _)| !l.is_local(az)).map(|(_, s)| s.clone()).collect()
                    };
                    cluster_subnets = if private.is_empty() { regional(&public) } else { regional(&private) };
                }
                (None, Some(ex)) => {
                    for id in &ex.subnet_ids {
                        private.insert(id.clone(), id.clone());
                        public.insert(id.clone(), id.clone());
                        cluster_subnets.push(id.clone());
                    }
                    // the control plane's own subnets of the VPC, when the spec names them
                    let own = spec.cluster.as_ref().map(|c| &c.control_plane_subnets).filter(|s| !s.is_empty());
                    if let Some(own) = own {
                        cluster_subnets = own.clone();
                    }
                }
                (None, None) => {}
            }
            let sgs: Vec<String> =
                if plan.steps.iter().any(|s| s.key == "sg/cluster") { vec!["sg/cluster".into()] } else { vec![] };
            let cni = eksodus_net::layout::cni_options(spec);
            let max_pods: BTreeMap<String, u32> = types
                .iter()
                .filter_map(|t| {
                    let l = eksodus_net::cni::limits(t).ok()?;
                    Some((t.clone(), eksodus_net::cni::max_pods(l, &cni, vcpus.get(t).copied(), false).value))
                })
                .collect();
            let inputs = Inputs {
                account: &account,
                version: &version,
                catalogue: catalogue.as_ref(),
                installed_addons: &found.addons,
                iam_keys: &iam_keys,
                cluster_subnets,
                private_subnets: private,
                public_subnets: public,
                security_groups: sgs,
                max_pods: max_pods.clone(),
                cluster_security_group: owned_cluster.and_then(|c| c.security_group.clone()),
                cluster_bootstrap: owned_cluster.and_then(ClusterInfo::bootstrap),
            };
            let mut set = self.eks.desired(spec, &inputs)?;
            // the log group is made before the cluster, so EKS writes to it instead of making its own
            if !logs_desired.is_empty() {
                for d in set.desired.iter_mut().filter(|d| d.key == CLUSTER_KEY) {
                    d.depends_on.push(crate::logs::KEY.into());
                }
            }
            deferred.extend(set.deferred);
            plan.extend(self.eks.diff(&set.desired, &found)?);
            for n in &c.nodegroups {
                if let Some(m) = n.instance_types.iter().filter_map(|t| max_pods.get(t).copied()).min() {
                    let mode = serde_json::to_value(spec.network.cni.mode).ok();
                    notes.push(format!(
                        "nodegroup {}: max pods {m} per node ({} mode)",
                        n.name,
                        mode.as_ref().and_then(|v| v.as_str()).unwrap_or("?")
                    ));
                }
            }

            // access entries and Pod Identity associations live in the cluster
            let mut access = match owned_cluster {
                Some(cl) => {
                    let entries = self.entries(&account, cl.authentication_mode);
                    match access_found {
                        Some(f) => entries.plan_from(spec, f).await,
                        None => entries.plan(spec).await,
                    }
                    .map_err(access_err)?
                }
                None => {
                    let mut desired = self.entries(&account, None).desired(spec);
                    desired.retain(|d| d.kind != "cluster-auth-mode"); // CreateCluster sets the mode
                    for d in &mut desired {
                        d.depends_on.retain(|k| k != "auth-mode");
                    }
                    eksodus_core::plan::diff(&desired, &[])
                }
            };
            for s in &mut access.steps {
                s.depends_on.push(CLUSTER_KEY.into());
                s.observed_depends_on.push(CLUSTER_KEY.into());
                if s.kind == "pod-identity-association" {
                    let role = format!("role/pod/{}", s.key.trim_start_matches("pod-identity/"));
                    if iam_keys.contains(&role) {
                        s.depends_on.push(role.clone());
                    }
                    s.observed_depends_on.push(role);
                }
            }
            plan.extend(access);
            let made: Vec<String> = spec
                .access
                .iter()
                .flat_map(|a| a.service_accounts.iter().chain(&a.pod_identities))
                .filter(|s| s.create_service_account)
                .map(|s| format!("{}/{}", s.namespace, s.name))
                .collect();
            if !made.is_empty() {
                notes.push(format!(
                    "after up, the Kubernetes service accounts {} are made or kept in step (one that is not eksodus's is left alone)",
                    made.join(", ")
                ));
            }
        } else if owned_cluster.is_some() {
            notes.push(
                "the spec has no cluster section, but a cluster of this environment exists (down removes it)".into(),
            );
        }
        plan.critical_path_calls()?;
        Ok(EnvPlan { plan, deferred, notes, cluster: found.cluster, account })
    }

    /// The router that sends each kind to its reconciler.
    pub fn router<'a>(&'a self, entries: &'a AccessEntries) -> Router<'a> {
        Router::new()
            .route(eksodus_net::ec2::KINDS, &self.network)
            .route(eksodus_access::iam::KINDS, &self.iam)
            .route(eks::KINDS, &self.eks)
            .route(crate::kms::KINDS, &self.kms)
            .route(crate::logs::KINDS, &self.logs)
            .route(eksodus_access::entries::KINDS, entries)
    }

    /// The spec with the adopted subnets named by CIDR block (`network.existing.subnet_cidrs`, and
    /// nodegroups' `subnets` naming them) replaced by their IDs, looked up in the VPC; `None` when there are
    /// none. A block no subnet of the VPC has is an error naming its entry.
    async fn resolve_subnet_cidrs(&self, spec: &EnvironmentSpec) -> Result<Option<EnvironmentSpec>, Error> {
        let Some(ex) = spec.network.existing.as_ref().filter(|e| !e.subnet_cidrs.is_empty()) else { return Ok(None) };
        let ids = eksodus_net::ec2::subnets_by_cidr(&self.ec2, &ex.vpc_id, &ex.subnet_cidrs).await?;
        let mut out = spec.clone();
        let mut by_block = BTreeMap::new();
        for (i, (block, id)) in ex.subnet_cidrs.iter().zip(ids).enumerate() {
            let Some(id) = id else {
                return Err(Error::Spec {
                    field: format!("network.existing.subnet_cidrs[{i}]"),
                    message: format!("no subnet of {} has the block {block}", ex.vpc_id),
                });
            };
            by_block.insert(block.to_string(), id.clone());
            let adopted = out.network.existing.as_mut().expect("checked above");
            if !adopted.subnet_ids.contains(&id) {
                adopted.subnet_ids.push(id);
            }
        }
        if let Some(e) = out.network.existing.as_mut() {
            e.subnet_cidrs.clear();
        }
        let named = out.cluster.iter_mut().flat_map(|c| {
            let ng = c.nodegroups.iter_mut().flat_map(|n| n.subnets.iter_mut());
            ng.chain(c.fargate_profiles.iter_mut().flat_map(|p| p.subnets.iter_mut()))
        });
        for s in named {
            if let Some(id) = s.parse::<ipnet::Ipv4Net>().ok().and_then(|b| by_block.get(&b.to_string())) {
                *s = id.clone();
            }
        }
        Ok(Some(out))
    }

    /// The spec with each `instance_selector` resolved to instance types (and taken out), or `None` when no
    /// nodegroup has one. A nodegroup that runs keeps its types while every one still satisfies its selector
    /// (read for those types alone); a new one, or one whose selector its types no longer satisfy, gets what
    /// the region's catalogue offers now (read once per plan). Says what it chose in `notes`.
    async fn resolve_selectors(
        &self,
        spec: &EnvironmentSpec,
        found: &eks::Found,
        notes: &mut Vec<String>,
    ) -> Result<Option<EnvironmentSpec>, Error> {
        use eksodus_net::select::{select, still_satisfies, Wants};
        if spec.cluster.as_ref().is_none_or(|c| c.nodegroups.iter().all(|n| n.instance_selector.is_none())) {
            return Ok(None);
        }
        let mut out = spec.clone();
        let mut catalogue = None;
        for (i, n) in out.cluster.iter_mut().flat_map(|c| c.nodegroups.iter_mut()).enumerate() {
            let Some(sel) = n.instance_selector.take() else { continue };
            // the zones its subnets are in: known offline for a VPC eksodus lays out, not for one of the user's
            let zones = match (&spec.network.existing, n.zones.is_empty()) {
                (Some(_), _) => vec![],
                (None, true) => spec.az_names(),
                (None, false) => n.zones.clone(),
            };
            let w = Wants { selector: &sel, spot: n.capacity_type == "SPOT", zones: &zones };
            let at = |e: eksodus_net::Error| match e {
                eksodus_net::Error::Selection { field, message } => {
                    Error::Spec { field: format!("cluster.nodegroups[{i}].{field}"), message }
                }
                e => Error::from(e),
            };
            let running: Vec<String> = found
                .observed
                .iter()
                .find(|o| o.kind == "eks-nodegroup" && o.physical_id == n.name)
                .and_then(|o| o.props.get("instance_types"))
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|t| t.as_str().map(String::from)).collect())
                .unwrap_or_default();
            if !running.is_empty() {
                let theirs = eksodus_net::ec2::instance_catalogue(&self.ec2, Some(&running)).await?;
                if still_satisfies(&w, &theirs, &running).map_err(at)? {
                    notes.push(format!(
                        "nodegroup {}: the instance selector keeps the {} types it runs",
                        n.name,
                        running.len()
                    ));
                    n.instance_types = running;
                    continue;
                }
            }
            if catalogue.is_none() {
                catalogue = Some(eksodus_net::ec2::instance_catalogue(&self.ec2, None).await?);
            }
            let chosen = select(&w, catalogue.as_deref().unwrap_or_default()).map_err(at)?;
            let mut left_out = Vec::new();
            if chosen.not_in_zones > 0 {
                left_out.push(format!("{} not offered in all its zones", chosen.not_in_zones));
            }
            if chosen.no_cni_data > 0 {
                left_out.push(format!("{} without VPC CNI limits", chosen.no_cni_data));
            }
            notes.push(format!(
                "nodegroup {}: the instance selector chose {} types: {}{}",
                n.name,
                chosen.types.len(),
                chosen.types.join(", "),
                if left_out.is_empty() { String::new() } else { format!(" (left out: {})", left_out.join(", ")) }
            ));
            n.instance_types = chosen.types;
        }
        Ok(Some(out))
    }

    /// Applies one plan.
    pub async fn apply(&self, plan: &EnvPlan, events: &EventSink) -> Result<ApplyReport, Error> {
        // boxed: the work's future is large, and a caller awaiting it inline would carry it on its own stack
        Box::pin(self.apply_unboxed(plan, events)).await
    }

    async fn apply_unboxed(&self, plan: &EnvPlan, events: &EventSink) -> Result<ApplyReport, Error> {
        let entries = self.entries(&plan.account, plan.cluster.as_ref().and_then(|c| c.authentication_mode));
        let router = self.router(&entries);
        Ok(Engine::new(self.options).apply(&plan.plan, &router, events).await?)
    }

    /// Plans and applies until a plan is empty. Stops at the first round with a failure.
    pub async fn up(&self, events: &EventSink) -> Result<UpReport, Error> {
        self.up_from(self.plan().await?, events).await
    }

    /// [`Environment::up`] starting with `first`, a plan just made (the one a driver showed and the user
    /// confirmed): that plan is applied as it is, not made again.
    pub async fn up_from(&self, first: EnvPlan, events: &EventSink) -> Result<UpReport, Error> {
        // boxed: the work's future is large, and a caller awaiting it inline would carry it on its own stack
        Box::pin(self.up_from_unboxed(first, events)).await
    }

    async fn up_from_unboxed(&self, first: EnvPlan, events: &EventSink) -> Result<UpReport, Error> {
        let mut rounds = Vec::new();
        let mut first = Some(first);
        for round in 1..=MAX_ROUNDS {
            let p = match first.take() {
                Some(p) => p,
                None => {
                    let t = Instant::now();
                    events.emit(Event::PhaseStarted { phase: format!("plan (round {round})"), total: 0 });
                    let p = self.plan().await?;
                    events.emit(Event::PhaseFinished {
                        phase: format!("plan (round {round})"),
                        elapsed_ms: t.elapsed().as_millis() as u64,
                    });
                    p
                }
            };
            if p.is_converged() {
                // the AWS side is converged: a cluster that does not answer leaves its Kubernetes-side steps
                // pending (a later `up` does them), it does not fail what was built
                let mut kube_skipped = None;
                let eni_configs = pending(self.kube_after_up(&p).await, "ENIConfigs not applied", &mut kube_skipped)?;
                let cni_config = pending(
                    self.windows_ipam_after_up(&p).await,
                    "Windows IP address management not turned on",
                    &mut kube_skipped,
                )?;
                let aws_auth = pending(self.aws_auth_after_up(&p).await, "aws-auth not updated", &mut kube_skipped)?;
                let service_accounts =
                    pending(self.service_accounts_after_up(&p).await, "service accounts not made", &mut kube_skipped)?;
                return Ok(UpReport {
                    rounds,
                    converged: p,
                    eni_configs,
                    cni_config,
                    aws_auth,
                    service_accounts,
                    kube_skipped,
                });
            }
            if p.plan.is_empty() {
                return Err(Error::NotConverged {
                    message: format!("nothing left to do, but these still wait: {}", p.deferred.join("; ")),
                });
            }
            let report = self.apply(&p, events).await?;
            let ok = report.is_success();
            rounds.push(Round { plan: p, report: report.clone() });
            if !ok {
                return Err(Error::Incomplete {
                    failures: report.failures().map(|(id, e)| format!("{id}: {e}")).collect(),
                });
            }
        }
        let last: Vec<String> = rounds
            .last()
            .map(|r| {
                r.plan
                    .plan
                    .changes()
                    .map(|s| {
                        let fields: Vec<String> = s
                            .changes
                            .iter()
                            .map(|c| {
                                format!(
                                    "{} {} -> {}",
                                    c.field,
                                    c.from.as_ref().map_or("(none)".into(), |v| v.to_string()),
                                    c.to.as_ref().map_or("(none)".into(), |v| v.to_string())
                                )
                            })
                            .collect();
                        format!("{} ({})", s.id, fields.join(", "))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Err(Error::NotConverged {
            message: format!("no empty plan after {MAX_ROUNDS} rounds; still changing: {}", last.join("; ")),
        })
    }

    async fn kube_client(&self, info: &ClusterInfo) -> Result<Option<kube::Client>, Error> {
        match &self.kube {
            KubeAccess::None => Ok(None),
            KubeAccess::Client(c) => Ok(Some(c.clone())),
            KubeAccess::Token(creds) => kube_side::client_for(info, &self.spec.region, creds).map(Some),
            KubeAccess::Provider(p) => {
                kube_side::client_with_provider(info, &self.spec.region, p.clone()).await.map(Some)
            }
        }
    }

    /// The spec's aws-auth mappings and accounts, merged into `kube-system/aws-auth` once the cluster exists,
    /// when its authentication mode reads the ConfigMap: read-merge-write with the resourceVersion, everyone
    /// else's entries kept, behind the lockout guard (with the cluster's access entries counted). Nothing is
    /// read when the spec asks for no mapping; `cargo xtask access aws-auth apply` removes eksodus's last ones.
    async fn aws_auth_after_up(
        &self,
        p: &EnvPlan,
    ) -> Result<(Vec<eksodus_access::awsauth::Change>, Option<String>), Error> {
        let services = eksodus_access::awsauth::service_rbac(&self.spec);
        let wanted = !eksodus_access::awsauth::desired_mappings(&self.spec).is_empty()
            || !eksodus_access::awsauth::desired_accounts(&self.spec).is_empty()
            || !services.is_empty();
        let Some(info) = p.cluster.as_ref().filter(|c| c.owned) else { return Ok((vec![], None)) };
        let mode = info.authentication_mode.unwrap_or(eksodus_core::spec::AuthenticationMode::ConfigMap);
        if !wanted || mode == eksodus_core::spec::AuthenticationMode::Api {
            return Ok((vec![], None));
        }
        let Some(client) = self.kube_client(info).await? else {
            return Ok((vec![], Some("no access to the cluster's API server: aws-auth not updated".into())));
        };
        kube_side::reachable(&client, Duration::from_secs(20)).await?;
        // admins through access entries count for the guard in a mode that reads them
        let entries = if mode.reads_access_entries() {
            let acc = self.entries(&info.account, Some(mode));
            let mut found = acc.discover().await?;
            acc.resolve_admins(&mut found).await?;
            found.all
        } else {
            vec![]
        };
        let opts = eksodus_access::cluster::EditOptions { force: self.force, mode, entries, ..Default::default() };
        // the services' RBAC first: a mapping that names a user nothing binds would do nothing
        kube_side::apply_rbac(&client, &services).await?;
        let api = eksodus_access::cluster::AwsAuthApi::new(client);
        match api.apply_spec(&self.spec, Some(&info.account), &opts).await {
            Ok(out) => Ok((out.changes, None)),
            Err(eksodus_access::Error::Kube(e)) => {
                Err(Error::Kube { what: "aws-auth read-merge-write".into(), source: e })
            }
            Err(e) => Err(access_err(e)),
        }
    }

    /// The Kubernetes service accounts of the spec's entries with `create_service_account`, once the cluster
    /// exists: eksodus's kept in step, the user's left alone, eksodus's that the spec dropped deleted. Nothing is
    /// read when the spec asks for none (as with aws-auth): the cluster's deletion takes the last ones.
    async fn service_accounts_after_up(
        &self,
        p: &EnvPlan,
    ) -> Result<(Vec<eksodus_access::serviceaccounts::Change>, Option<String>), Error> {
        let Some(info) = p.cluster.as_ref().filter(|c| c.owned) else { return Ok((vec![], None)) };
        let wanted = eksodus_access::serviceaccounts::desired(&self.spec, |sa| {
            eksodus_access::iam::irsa_role_arn(&self.spec, &info.account, sa)
        });
        if wanted.is_empty() {
            return Ok((vec![], None));
        }
        let Some(client) = self.kube_client(info).await? else {
            return Ok((vec![], Some("no access to the cluster's API server: service accounts not made".into())));
        };
        kube_side::reachable(&client, Duration::from_secs(20)).await?;
        Ok((kube_side::apply_service_accounts(&client, &self.spec.name, &wanted).await?, None))
    }

    /// Windows IP address management in the VPC CNI's ConfigMap, once the cluster exists, when the spec has
    /// Windows nodegroups (EKS gives their pods no address without it). Read first: nothing is written when
    /// it is on already.
    async fn windows_ipam_after_up(&self, p: &EnvPlan) -> Result<(Vec<String>, Option<String>), Error> {
        if !self.spec.cluster.iter().flat_map(|c| &c.nodegroups).any(|n| n.is_windows()) {
            return Ok((vec![], None));
        }
        let Some(info) = p.cluster.as_ref().filter(|c| c.owned) else { return Ok((vec![], None)) };
        let Some(client) = self.kube_client(info).await? else {
            return Ok((
                vec![],
                Some("no access to the cluster's API server: Windows IP address management not turned on".into()),
            ));
        };
        kube_side::reachable(&client, Duration::from_secs(20)).await?;
        let changed = kube_side::enable_windows_ipam(&client).await?;
        Ok((if changed { vec![kube_side::WINDOWS_IPAM_KEY.to_string()] } else { vec![] }, None))
    }

    /// The ENIConfigs of custom networking, once the cluster and the pod subnets exist.
    async fn kube_after_up(&self, p: &EnvPlan) -> Result<(Vec<String>, Option<String>), Error> {
        if self.spec.network.cni.custom_networking.is_none() {
            return Ok((vec![], None));
        }
        let Some(info) = p.cluster.as_ref().filter(|c| c.owned) else { return Ok((vec![], None)) };
        let Some(client) = self.kube_client(info).await? else {
            return Ok((vec![], Some("no access to the cluster's API server: ENIConfigs not applied".into())));
        };
        kube_side::reachable(&client, Duration::from_secs(20)).await?;
        let found = self.network.discover().await?;
        let by_key: HashMap<&str, &str> =
            found.observed.iter().map(|o| (o.key.as_str(), o.physical_id.as_str())).collect();
        let zoned = self.network.resolve_zones(&self.spec).await?;
        let layout = eksodus_net::layout::plan(zoned.as_ref().unwrap_or(&self.spec))?;
        let mut pods = BTreeMap::new();
        for s in layout.subnets.iter().filter(|s| s.tier == eksodus_net::layout::Tier::Pods) {
            if let Some(id) = by_key.get(s.key().as_str()) {
                pods.insert(s.az.clone(), id.to_string());
            }
        }
        let sgs: Vec<String> = by_key.get("sg/cluster").map(|s| vec![s.to_string()]).unwrap_or_default();
        let objs = addons::eni_configs(&pods, &sgs);
        Ok((kube_side::apply_eni_configs(&client, &objs).await?, None))
    }

    /// The plan that removes everything the environment owns.
    pub async fn destroy_plan(&self) -> Result<DestroyPlan, Error> {
        // boxed: the work's future is large, and a caller awaiting it inline would carry it on its own stack
        Box::pin(self.destroy_plan_unboxed()).await
    }

    async fn destroy_plan_unboxed(&self) -> Result<DestroyPlan, Error> {
        let net_found = self.network.discover().await?;
        let mut keys = net_found.keys.clone();
        // a key already scheduled for deletion is on its way out: not planned again, not reported as left
        let kms_found: Vec<_> = self.kms.discover().await?.into_iter().filter(|o| !pending_deletion(o)).collect();
        for o in &kms_found {
            keys.insert(o.physical_id.clone(), o.key.clone());
        }
        let mut found = self.eks.discover(&keys).await?;
        let owned = found.cluster.clone().filter(|c| c.owned);
        // the log group goes after the cluster, which writes to it to the end
        let logs_found = self.logs.discover().await?.observed;
        if !logs_found.is_empty() {
            for o in found.observed.iter_mut().filter(|o| o.key == CLUSTER_KEY) {
                o.depends_on.push(crate::logs::KEY.into());
            }
        }
        let mut plan = Plan::destroy(&net_found.observed);
        plan.extend(Plan::destroy(&kms_found));
        plan.extend(Plan::destroy(&logs_found));
        plan.extend(self.iam.destroy_plan(&self.spec).await.map_err(Error::Aws)?);
        plan.extend(Plan::destroy(&found.observed));
        let account = match &owned {
            Some(c) => c.account.clone(),
            None => String::new(),
        };
        if let Some(c) = &owned {
            // the cluster takes its entries with it; deleting owned ones first keeps the order the API documents
            let mut access =
                self.entries(&account, c.authentication_mode).force(true).destroy_plan().await.map_err(access_err)?;
            for s in &mut access.steps {
                s.observed_depends_on.push(CLUSTER_KEY.into());
                if s.kind == "pod-identity-association" {
                    s.observed_depends_on.push(format!("role/pod/{}", s.key.trim_start_matches("pod-identity/")));
                }
            }
            plan.extend(access);
        }
        Ok(DestroyPlan { plan, cluster: found.cluster, account })
    }

    /// Removes the environment: the Kubernetes-side cleanup first when the cluster is reachable, then every
    /// owned resource in dependency order; reports what could not be removed.
    pub async fn down(&self, events: &EventSink, cleanup_timeout: Duration) -> Result<DownReport, Error> {
        self.down_from(self.destroy_plan().await?, events, cleanup_timeout).await
    }

    /// [`Environment::down`] applying `destroy`, a plan from [`Environment::destroy_plan`] (the one a driver
    /// showed and the user confirmed).
    pub async fn down_from(
        &self,
        destroy: DestroyPlan,
        events: &EventSink,
        cleanup_timeout: Duration,
    ) -> Result<DownReport, Error> {
        // boxed: the work's future is large, and a caller awaiting it inline would carry it on its own stack
        Box::pin(self.down_from_unboxed(destroy, events, cleanup_timeout)).await
    }

    async fn down_from_unboxed(
        &self,
        destroy: DestroyPlan,
        events: &EventSink,
        cleanup_timeout: Duration,
    ) -> Result<DownReport, Error> {
        let DestroyPlan { plan, cluster, account } = destroy;
        let mut cleanup = None;
        let mut kube_skipped = None;
        let mut not_checked = Vec::new();
        if let Some(info) = cluster.as_ref().filter(|c| c.owned && c.status == "ACTIVE") {
            // teardown never depends on the cluster answering: without it, what its controllers made in AWS is
            // found by their tags instead
            let unreachable = match self.kube_client(info).await {
                Ok(Some(client)) => match async {
                    kube_side::reachable(&client, Duration::from_secs(20)).await?;
                    kube_side::delete_load_balancers(&client, cleanup_timeout).await
                }
                .await
                {
                    Ok(c) => {
                        cleanup = Some(c);
                        None
                    }
                    Err(e) => Some(format!("cannot reach the cluster's API server ({e})")),
                },
                Ok(None) => Some("Kubernetes skipped (no access to the cluster's API server was given)".to_string()),
                Err(e) => Some(format!("cannot reach the cluster's API server ({e})")),
            };
            if let Some(why) = unreachable {
                events.emit(Event::Note { message: format!("{why}: removing its load balancers by their tags") });
                not_checked.push(format!(
                    "{why}: Services and Ingresses were not deleted through it; the load balancers and target groups its controllers tagged were removed instead, and anything else its controllers made in AWS without those tags may remain"
                ));
                kube_skipped = Some(why);
            }
        }
        let vpc = plan
            .steps
            .iter()
            .find(|s| s.key == "vpc")
            .and_then(|s| s.physical_id.clone())
            .or_else(|| self.spec.network.existing.as_ref().map(|e| e.vpc_id.clone()));
        let swept = match &vpc {
            Some(vpc) => match self.sweeper.sweep(&self.spec.name, vpc).await {
                Ok(s) => Some(s),
                Err(e) => {
                    not_checked.push(format!("the load balancers in {vpc} could not be listed: {e}"));
                    None
                }
            },
            None => None,
        };
        let entries = self.entries(&account, cluster.as_ref().and_then(|c| c.authentication_mode)).force(true);
        let router = self.router(&entries);
        let report = Engine::new(self.options).apply(&plan, &router, events).await?;
        let remaining = self.remaining().await?;
        not_checked.extend(self.cluster_volumes().await);
        Ok(DownReport { cleanup, kube_skipped, swept, not_checked, plan, report, remaining })
    }

    /// EBS volumes the cluster's CSI driver or cloud provider made (tagged for the cluster): never deleted by
    /// `down`, since they hold data, and named in its report.
    async fn cluster_volumes(&self) -> Vec<String> {
        let tag = crate::sweep::cluster_tag(&self.spec.name);
        let f = aws_sdk_ec2::types::Filter::builder().name("tag-key").values(&tag).build();
        let r = self.network_calls().read(|| self.ec2.describe_volumes().filters(f.clone()).send()).await;
        match r {
            Ok(v) => v
                .volumes()
                .iter()
                .filter_map(|v| v.volume_id())
                .map(|id| {
                    format!("EBS volume {id} (made for the cluster's PersistentVolumes; left in place: it holds data)")
                })
                .collect(),
            Err(e) => vec![format!(
                "the cluster's EBS volumes could not be listed: {}",
                eksodus_core::aws::step_error("DescribeVolumes", e)
            )],
        }
    }

    fn network_calls(&self) -> &Calls {
        self.network.calls()
    }

    /// Every tagged resource of the environment that still exists.
    pub async fn remaining(&self) -> Result<Vec<String>, Error> {
        // boxed: the work's future is large, and a caller awaiting it inline would carry it on its own stack
        Box::pin(self.remaining_unboxed()).await
    }

    async fn remaining_unboxed(&self) -> Result<Vec<String>, Error> {
        let mut left = self.network.tagged_leftovers().await?;
        left.extend(
            self.iam
                .discover(&self.spec)
                .await
                .map_err(Error::Aws)?
                .into_iter()
                .map(|o| format!("{} {}", o.kind, o.physical_id)),
        );
        let found = self.eks.discover(&HashMap::new()).await?;
        left.extend(found.observed.iter().map(|o| format!("{} {}", o.kind, o.physical_id)));
        left.extend(self.logs.discover().await?.observed.iter().map(|o| format!("{} {}", o.kind, o.physical_id)));
        let keys = self.kms.discover().await?;
        left.extend(keys.iter().filter(|o| !pending_deletion(o)).map(|o| format!("{} {}", o.kind, o.physical_id)));
        Ok(left)
    }

    /// The upgrade to `to`: preflights and plan, from discovered state.
    pub async fn upgrade_plan(&self, to: &str) -> Result<(Vec<Preflight>, Plan, Found), Error> {
        // boxed: the work's future is large, and a caller awaiting it inline would carry it on its own stack
        Box::pin(self.upgrade_plan_unboxed(to)).await
    }

    async fn upgrade_plan_unboxed(&self, to: &str) -> Result<(Vec<Preflight>, Plan, Found), Error> {
        let net = self.network.discover().await?;
        let found = self.eks.discover(&net.keys).await?;
        let pinned: BTreeMap<String, String> = self
            .spec
            .cluster
            .iter()
            .flat_map(|c| &c.addons)
            .filter_map(|a| a.version.clone().filter(|v| v != "latest").map(|v| (a.name.clone(), v)))
            .collect();
        let subnet_ids = found.cluster.as_ref().map(|c| c.subnet_ids.clone()).unwrap_or_default();
        let free = self.network.subnet_free(&subnet_ids).await?;
        let deprecated = match found.cluster.as_ref() {
            Some(info) => match self.kube_client(info).await? {
                Some(client) => kube_side::deprecated_apis(&client).await,
                None => None,
            },
            None => None,
        };
        let (pre, plan) = self.eks.upgrade_plan(&found, to, &pinned, free, deprecated).await?;
        Ok((pre, plan, found))
    }

    /// Upgrades to `to` one minor version at a time: control plane, then addons, then nodegroups per step.
    /// Safe to re-run after a crash: the plan comes from what the cluster runs now.
    pub async fn upgrade(&self, to: &str, events: &EventSink) -> Result<UpgradeReport, Error> {
        let (preflights, plan, _) = self.upgrade_plan(to).await?;
        self.upgrade_from(preflights, plan, events).await
    }

    /// Applies an upgrade plan from [`Environment::upgrade_plan`] (the one a driver showed and the user
    /// confirmed).
    pub async fn upgrade_from(
        &self,
        preflights: Vec<Preflight>,
        plan: Plan,
        events: &EventSink,
    ) -> Result<UpgradeReport, Error> {
        // boxed: the work's future is large, and a caller awaiting it inline would carry it on its own stack
        Box::pin(self.upgrade_from_unboxed(preflights, plan, events)).await
    }

    async fn upgrade_from_unboxed(
        &self,
        preflights: Vec<Preflight>,
        plan: Plan,
        events: &EventSink,
    ) -> Result<UpgradeReport, Error> {
        if plan.is_empty() {
            return Ok(UpgradeReport { preflights, plan, report: None });
        }
        let report = Engine::new(self.options).apply(&plan, &self.eks, events).await?;
        Ok(UpgradeReport { preflights, plan, report: Some(report) })
    }

    /// What a kubeconfig needs, from `DescribeCluster`.
    pub async fn cluster_access(&self) -> Result<crate::kubeconfig::ClusterAccess, Error> {
        // boxed: the work's future is large, and a caller awaiting it inline would carry it on its own stack
        Box::pin(self.cluster_access_unboxed()).await
    }

    async fn cluster_access_unboxed(&self) -> Result<crate::kubeconfig::ClusterAccess, Error> {
        let found = self.eks.discover(&HashMap::new()).await?;
        let c = found.cluster.ok_or_else(|| Error::NotReady {
            what: format!("environment {}", self.spec.name),
            message: format!("no EKS cluster named {} exists (run up first)", self.spec.name),
        })?;
        Ok(crate::kubeconfig::ClusterAccess {
            arn: c.arn.clone(),
            name: c.name.clone(),
            region: self.spec.region.clone(),
            endpoint: c.endpoint.clone().unwrap_or_default(),
            certificate_authority_data: c.certificate_authority.clone().unwrap_or_default(),
        })
    }
}

fn pending_deletion(o: &eksodus_core::plan::Observed) -> bool {
    o.props.get("state").and_then(|s| s.as_str()) == Some("PendingDeletion")
}

/// Compares the spec's version with the running cluster's: equal is fine; anything else names the way forward.
pub fn check_version(spec: &str, running: &str) -> Result<(), Error> {
    use eksodus_core::spec::parse_version;
    if spec == running {
        return Ok(());
    }
    let (s, r) = (parse_version(spec).map(|v| v.1), parse_version(running).map(|v| v.1));
    let message = match (s, r) {
        (Some(s), Some(r)) if s < r => {
            format!("the cluster runs {running} and EKS cannot go back to {spec}; set cluster.version to {running}")
        }
        (Some(s), Some(r)) if s > r + 1 => format!(
            "the cluster runs {running}; {spec} skips {} minor version(s) and EKS moves one at a time: run `upgrade --to {spec}`, which goes through each",
            s - r - 1
        ),
        _ => format!("the cluster runs {running}; run `upgrade --to {spec}` (with its preflight) to move it"),
    };
    Err(Error::Spec { field: "cluster.version".into(), message })
}

/// Whether a plan step is one the environment planner would never apply without asking (a delete or a
/// replacement): drivers use it to ask for confirmation.
pub fn is_destructive(action: Action) -> bool {
    matches!(action, Action::Delete | Action::Replace)
}

/// A Kubernetes-side step after `up`: its changes, with its note (or, when the cluster does not answer, a
/// pending note saying what was `not_done`) kept as the first in `skipped`; other errors fail `up`.
fn pending<T>(
    r: Result<(Vec<T>, Option<String>), Error>,
    not_done: &str,
    skipped: &mut Option<String>,
) -> Result<Vec<T>, Error> {
    match r {
        Ok((changes, note)) => {
            *skipped = skipped.take().or(note);
            Ok(changes)
        }
        Err(e) if e.is_kube() => {
            *skipped = skipped.take().or(Some(format!(
                "pending: cannot reach the cluster's API server ({e}); {not_done}: run up again once it answers"
            )));
            Ok(vec![])
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_spec_and_the_examples_are_valid() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("## A spec").expect("README has a spec section");
        let block = &readme[start..];
        let block = &block[block.find("```yaml\n").expect("a yaml block") + 8..];
        let block = &block[..block.find("```").expect("closed")];
        for (name, text) in [
            ("README", block),
            ("examples/demo.yaml", include_str!("../../../examples/demo.yaml")),
            ("examples/minimal.yaml", include_str!("../../../examples/minimal.yaml")),
        ] {
            let spec = EnvironmentSpec::from_yaml(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            validate(&spec).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn version_mismatches_name_the_way_forward() {
        assert!(check_version("1.31", "1.31").is_ok());
        let e = check_version("1.33", "1.31").unwrap_err().to_string();
        assert!(
            e.starts_with("cluster.version:") && e.contains("skips 1 minor") && e.contains("upgrade --to 1.33"),
            "{e}"
        );
        let e = check_version("1.32", "1.31").unwrap_err().to_string();
        assert!(e.contains("upgrade --to 1.32"), "{e}");
        let e = check_version("1.30", "1.31").unwrap_err().to_string();
        assert!(e.contains("cannot go back"), "{e}");
    }
}
