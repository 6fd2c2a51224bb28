//! Objects in a version the target serves. An etcd snapshot holds objects in the version the API server stored
//! them in (CustomResourceDefinitions as `apiextensions.k8s.io/v1beta1`, whatever an old cluster wrote before
//! a version was removed), and old manifest directories hold versions Kubernetes no longer serves. Each version
//! removed from Kubernetes is converted to its replacement as the API server's own conversion does, or, where no
//! faithful conversion exists, reported with what to do instead.

use serde_json::{json, Map, Value};

use crate::object::{Obj, Ptr};

/// What converting one object did.
#[derive(Debug, Clone, PartialEq)]
pub enum Converted {
    /// Already in a served version.
    Unchanged(Obj),
    /// Converted from `from`.
    From {
        /// The object in the served version.
        obj: Obj,
        /// The version it was in.
        from: String,
    },
}

/// The served replacement of a removed `apiVersion` for `kind`, if there is one, and the Kubernetes release
/// that stopped serving the old one.
fn replacement(api_version: &str, kind: &str) -> Option<(&'static str, &'static str)> {
    Some(match (api_version, kind) {
        ("apiextensions.k8s.io/v1beta1", "CustomResourceDefinition") => ("apiextensions.k8s.io/v1", "1.22"),
        ("apiregistration.k8s.io/v1beta1", "APIService") => ("apiregistration.k8s.io/v1", "1.22"),
        ("admissionregistration.k8s.io/v1beta1", "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration") => {
            ("admissionregistration.k8s.io/v1", "1.22")
        }
        ("extensions/v1beta1" | "networking.k8s.io/v1beta1", "Ingress") => ("networking.k8s.io/v1", "1.22"),
        ("networking.k8s.io/v1beta1", "IngressClass") => ("networking.k8s.io/v1", "1.22"),
        ("extensions/v1beta1", "NetworkPolicy") => ("networking.k8s.io/v1", "1.16"),
        ("extensions/v1beta1" | "apps/v1beta1" | "apps/v1beta2", "Deployment" | "DaemonSet" | "ReplicaSet") => {
            ("apps/v1", "1.16")
        }
        ("apps/v1beta1" | "apps/v1beta2", "StatefulSet" | "ControllerRevision") => ("apps/v1", "1.16"),
        ("batch/v1beta1", "CronJob") => ("batch/v1", "1.25"),
        ("policy/v1beta1", "PodDisruptionBudget") => ("policy/v1", "1.25"),
        ("autoscaling/v2beta2", "HorizontalPodAutoscaler") => ("autoscaling/v2", "1.26"),
        ("rbac.authorization.k8s.io/v1beta1" | "rbac.authorization.k8s.io/v1alpha1", _) => {
            ("rbac.authorization.k8s.io/v1", "1.22")
        }
        ("scheduling.k8s.io/v1beta1" | "scheduling.k8s.io/v1alpha1", "PriorityClass") => {
            ("scheduling.k8s.io/v1", "1.22")
        }
        (
            "storage.k8s.io/v1beta1",
            "StorageClass" | "VolumeAttachment" | "CSIDriver" | "CSINode" | "CSIStorageCapacity",
        ) => ("storage.k8s.io/v1", "1.22"),
        ("coordination.k8s.io/v1beta1", "Lease") => ("coordination.k8s.io/v1", "1.22"),
        ("discovery.k8s.io/v1beta1", "EndpointSlice") => ("discovery.k8s.io/v1", "1.25"),
        ("events.k8s.io/v1beta1", "Event") => ("events.k8s.io/v1", "1.25"),
        (
            "flowcontrol.apiserver.k8s.io/v1beta1"
            | "flowcontrol.apiserver.k8s.io/v1beta2"
            | "flowcontrol.apiserver.k8s.io/v1beta3",
            "FlowSchema" | "PriorityLevelConfiguration",
        ) => ("flowcontrol.apiserver.k8s.io/v1", "1.32"),
        ("node.k8s.io/v1beta1", "RuntimeClass") => ("node.k8s.io/v1", "1.25"),
        ("certificates.k8s.io/v1beta1", "CertificateSigningRequest") => ("certificates.k8s.io/v1", "1.22"),
        _ => return None,
    })
}

/// Versions removed without a replacement to convert to.
fn removed_without_replacement(api_version: &str, kind: &str) -> Option<&'static str> {
    Some(match (api_version, kind) {
        ("policy/v1beta1" | "extensions/v1beta1", "PodSecurityPolicy") => {
            "PodSecurityPolicy was removed in Kubernetes 1.25 with no replacement object: label the namespaces for \
             Pod Security admission (pod-security.kubernetes.io/enforce) instead"
        }
        ("autoscaling/v2beta1", "HorizontalPodAutoscaler") => {
            "autoscaling/v2beta1 (removed in 1.25) describes metrics in a shape autoscaling/v2 does not take: \
             export the HorizontalPodAutoscaler from a cluster that serves autoscaling/v2, or rewrite its metrics"
        }
        _ => return None,
    })
}

/// Converts `o` to a version Kubernetes serves, or says why it cannot.
pub fn to_served(o: Obj) -> Result<Converted, String> {
    let (av, kind) = (o.api_version().to_string(), o.kind().to_string());
    if let Some(why) = removed_without_replacement(&av, &kind) {
        return Err(why.to_string());
    }
    let Some((to, _)) = replacement(&av, &kind) else { return Ok(Converted::Unchanged(o)) };
    let mut v = o.0;
    match (to, kind.as_str()) {
        ("apiextensions.k8s.io/v1", _) => crd_v1(&mut v)?,
        ("networking.k8s.io/v1", "Ingress") => ingress_v1(&mut v),
        ("admissionregistration.k8s.io/v1", _) => webhooks_v1(&mut v)?,
        ("apps/v1", "Deployment" | "DaemonSet" | "ReplicaSet" | "StatefulSet") => apps_v1(&mut v),
        ("flowcontrol.apiserver.k8s.io/v1", "PriorityLevelConfiguration") => {
            // v1beta1/v1beta2 call the nominal shares `assuredConcurrencyShares`
            if let Some(l) = v.at_mut("/spec/limited").and_then(Value::as_object_mut) {
                if let Some(s) = l.remove("assuredConcurrencyShares") {
                    l.entry("nominalConcurrencyShares").or_insert(s);
                }
            }
        }
        ("discovery.k8s.io/v1", _) => endpointslice_v1(&mut v),
        _ => {}
    }
    v["apiVersion"] = json!(to);
    Ok(Converted::From { obj: Obj(v), from: av })
}

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.get(key).is_some_and(Value::is_object) {
        v[key] = json!({});
    }
    v[key].as_object_mut().expect("just made an object")
}

/// `apiextensions.k8s.io/v1beta1` CRD → `v1`, as the API server converts it: schema, subresources and printer
/// columns per version (`JSONPath` → `jsonPath`), `spec.version` dropped, `preserveUnknownFields: true`
/// (v1beta1's default) expressed as `x-kubernetes-preserve-unknown-fields` on each version's schema root, the
/// conversion webhook's fields under `conversion.webhook`.
fn crd_v1(v: &mut Value) -> Result<(), String> {
    let spec = obj_mut(v, "spec");
    let validation = spec.remove("validation");
    let subresources = spec.remove("subresources");
    let columns = spec.remove("additionalPrinterColumns");
    let single = spec.remove("version");
    let preserve = spec.remove("preserveUnknownFields").and_then(|p| p.as_bool()).unwrap_or(true);
    if spec.get("versions").and_then(Value::as_array).is_none_or(|a| a.is_empty()) {
        let Some(name) = single.as_ref().and_then(Value::as_str) else {
            return Err("a v1beta1 CustomResourceDefinition with neither spec.versions nor spec.version".into());
        };
        spec.insert("versions".into(), json!([{"name": name, "served": true, "storage": true}]));
    }
    let versions = spec.get_mut("versions").and_then(Value::as_array_mut).expect("versions set above");
    for ver in versions.iter_mut() {
        let Some(vm) = ver.as_object_mut() else { continue };
        if !vm.contains_key("schema") {
            if let Some(s) = &validation {
                vm.insert("schema".into(), s.clone());
            }
        }
        if !vm.contains_key("subresources") {
            if let Some(s) = &subresources {
                vm.insert("subresources".into(), s.clone());
            }
        }
        if !vm.contains_key("additionalPrinterColumns") {
            if let Some(c) = &columns {
                vm.insert("additionalPrinterColumns".into(), c.clone());
            }
        }
        if let Some(cols) = vm.get_mut("additionalPrinterColumns").and_then(Value::as_array_mut) {
            for c in cols.iter_mut().filter_map(Value::as_object_mut) {
                if let Some(p) = c.remove("JSONPath") {
                    c.insert("jsonPath".into(), p);
                }
            }
        }
        // v1 needs a structural schema on every version
        let schema = vm.entry("schema").or_insert_with(|| json!({}));
        let root = obj_mut(schema, "openAPIV3Schema");
        root.entry("type").or_insert_with(|| json!("object"));
        if preserve {
            root.entry("x-kubernetes-preserve-unknown-fields").or_insert(json!(true));
        }
    }
    if let Some(conv) = spec.get_mut("conversion").and_then(Value::as_object_mut) {
        let client = conv.remove("webhookClientConfig");
        let review = conv.remove("conversionReviewVersions");
        if conv.get("strategy").and_then(Value::as_str) == Some("Webhook") {
            let mut w = Map::new();
            if let Some(c) = client {
                w.insert("clientConfig".into(), c);
            }
            w.insert("conversionReviewVersions".into(), review.unwrap_or_else(|| json!(["v1beta1"])));
            conv.insert("webhook".into(), Value::Object(w));
        }
    }
    Ok(())
}

fn backend_v1(b: &mut Value) {
    let Some(m) = b.as_object_mut() else { return };
    let name = m.remove("serviceName");
    let port = m.remove("servicePort");
    if let Some(name) = name {
        let port = match port {
            Some(Value::Number(n)) => json!({"number": n}),
            Some(Value::String(s)) => match s.parse::<u32>() {
                Ok(n) => json!({"number": n}),
                Err(_) => json!({"name": s}),
            },
            _ => json!({}),
        };
        m.insert("service".into(), json!({"name": name, "port": port}));
    }
}

/// `extensions/v1beta1` and `networking.k8s.io/v1beta1` Ingress → `networking.k8s.io/v1`: `serviceName` and
/// `servicePort` become `service.name` and `service.port.number`/`name`, `spec.backend` becomes
/// `spec.defaultBackend`, and a path without a type gets `ImplementationSpecific` (v1beta1's default).
fn ingress_v1(v: &mut Value) {
    let spec = obj_mut(v, "spec");
    if let Some(b) = spec.remove("backend") {
        spec.insert("defaultBackend".into(), b);
    }
    if let Some(b) = spec.get_mut("defaultBackend") {
        backend_v1(b);
    }
    for rule in spec.get_mut("rules").and_then(Value::as_array_mut).into_iter().flatten() {
        for path in rule.at_mut("/http/paths").and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(b) = path.get_mut("backend") {
                backend_v1(b);
            }
            if let Some(p) = path.as_object_mut() {
                p.entry("pathType").or_insert(json!("ImplementationSpecific"));
            }
        }
    }
}

/// `admissionregistration.k8s.io/v1beta1` webhooks → `v1`: v1 requires `sideEffects` to be `None` or
/// `NoneOnDryRun` and `admissionReviewVersions` to be given (v1beta1 defaulted them to `Unknown` and
/// `[v1beta1]`). A webhook with unknown side effects cannot be carried over faithfully: reported.
fn webhooks_v1(v: &mut Value) -> Result<(), String> {
    for (i, w) in v.get_mut("webhooks").and_then(Value::as_array_mut).into_iter().flatten().enumerate() {
        let Some(m) = w.as_object_mut() else { continue };
        match m.get("sideEffects").and_then(Value::as_str) {
            Some("None" | "NoneOnDryRun") => {}
            other => {
                return Err(format!(
                    "webhooks[{i}].sideEffects is {} in admissionregistration.k8s.io/v1beta1; v1 accepts only None or \
                     NoneOnDryRun: set it on the source object (after checking what the webhook does) and export again",
                    other.unwrap_or("unset (Unknown)")
                ))
            }
        }
        m.entry("admissionReviewVersions").or_insert(json!(["v1beta1"]));
    }
    Ok(())
}

/// `extensions/v1beta1` and `apps/v1beta1|2` workloads → `apps/v1`: v1 requires a selector, which the old
/// versions defaulted to the template's labels.
fn apps_v1(v: &mut Value) {
    if v.at("/spec/selector").is_none() {
        if let Some(labels) = v.at("/spec/template/metadata/labels").cloned() {
            obj_mut(v, "spec").insert("selector".into(), json!({"matchLabels": labels}));
        }
    }
}

/// `discovery.k8s.io/v1beta1` EndpointSlice → `v1`: `topology` became `deprecatedTopology`, with the zone label
/// as `zone`.
fn endpointslice_v1(v: &mut Value) {
    for e in v.get_mut("endpoints").and_then(Value::as_array_mut).into_iter().flatten() {
        let Some(m) = e.as_object_mut() else { continue };
        if let Some(mut t) = m.remove("topology") {
            if let Some(zone) = t.as_object_mut().and_then(|t| t.remove("topology.kubernetes.io/zone")) {
                m.entry("zone").or_insert(zone);
            }
            if t.as_object().is_some_and(|t| !t.is_empty()) {
                m.insert("deprecatedTopology".into(), t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(v: Value) -> Value {
        match to_served(Obj(v)).unwrap() {
            Converted::From { obj, .. } => obj.0,
            Converted::Unchanged(o) => panic!("not converted: {}", o.0),
        }
    }

    #[test]
    fn a_v1beta1_crd_becomes_v1_with_per_version_schemas() {
        let got = conv(json!({"apiVersion": "apiextensions.k8s.io/v1beta1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "version": "v1", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true}, {"name": "v2", "served": true, "storage": false}],
                "validation": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object"}}}},
                "subresources": {"status": {}},
                "additionalPrinterColumns": [{"name": "Size", "type": "integer", "JSONPath": ".spec.size"}],
                "preserveUnknownFields": false,
                "conversion": {"strategy": "Webhook", "webhookClientConfig": {"service": {"namespace": "a", "name": "conv"}}}}}));
        assert_eq!(got["apiVersion"], "apiextensions.k8s.io/v1");
        let spec = &got["spec"];
        for k in ["validation", "subresources", "additionalPrinterColumns", "version", "preserveUnknownFields"] {
            assert!(spec.get(k).is_none(), "{k} stays at the top");
        }
        for ver in spec["versions"].as_array().unwrap() {
            assert_eq!(ver["schema"]["openAPIV3Schema"]["properties"]["spec"]["type"], "object");
            assert_eq!(ver["subresources"], json!({"status": {}}));
            assert_eq!(ver["additionalPrinterColumns"][0]["jsonPath"], ".spec.size");
            assert!(ver["schema"]["openAPIV3Schema"].get("x-kubernetes-preserve-unknown-fields").is_none());
        }
        assert_eq!(
            spec["conversion"],
            json!({"strategy": "Webhook", "webhook": {"clientConfig": {"service": {"namespace": "a", "name": "conv"}}, "conversionReviewVersions": ["v1beta1"]}})
        );
        // v1beta1's default keeps unknown fields: v1 says so in the schema
        let got = conv(json!({"apiVersion": "apiextensions.k8s.io/v1beta1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "things.example.com"}, "spec": {"group": "example.com", "version": "v1",
            "names": {"plural": "things", "kind": "Thing"}, "scope": "Cluster"}}));
        assert_eq!(
            got["spec"]["versions"],
            json!([{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}])
        );
    }

    #[test]
    fn old_ingresses_get_v1_backends() {
        let got = conv(
            json!({"apiVersion": "extensions/v1beta1", "kind": "Ingress", "metadata": {"name": "i", "namespace": "a"},
            "spec": {"backend": {"serviceName": "default", "servicePort": 80},
                     "rules": [{"host": "x", "http": {"paths": [{"path": "/", "backend": {"serviceName": "web", "servicePort": "http"}}]}}]}}),
        );
        assert_eq!(got["apiVersion"], "networking.k8s.io/v1");
        assert_eq!(got["spec"]["defaultBackend"], json!({"service": {"name": "default", "port": {"number": 80}}}));
        assert_eq!(
            got["spec"]["rules"][0]["http"]["paths"][0],
            json!({"path": "/", "pathType": "ImplementationSpecific", "backend": {"service": {"name": "web", "port": {"name": "http"}}}})
        );
    }

    #[test]
    fn removed_versions_without_a_replacement_are_reported_and_served_ones_pass() {
        let psp = Obj(json!({"apiVersion": "policy/v1beta1", "kind": "PodSecurityPolicy", "metadata": {"name": "p"}}));
        assert!(to_served(psp).unwrap_err().contains("Pod Security admission"));
        let hook =
            Obj(json!({"apiVersion": "admissionregistration.k8s.io/v1beta1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "h"}, "webhooks": [{"name": "a.example.com"}]}));
        assert!(to_served(hook).unwrap_err().contains("sideEffects"));
        let cm = Obj(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}));
        assert!(matches!(to_served(cm), Ok(Converted::Unchanged(_))));
        let d = conv(json!({"apiVersion": "extensions/v1beta1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"metadata": {"labels": {"app": "d"}}}}}));
        assert_eq!(
            (d["apiVersion"].as_str(), &d["spec"]["selector"]),
            (Some("apps/v1"), &json!({"matchLabels": {"app": "d"}}))
        );
    }
}
