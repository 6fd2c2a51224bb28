//! Protobuf objects to the JSON the API server would serve, for every built-in kind, driven by a schema of the
//! Kubernetes API's protobuf messages (`schema/k8s-proto-schema.txt`, generated from the k8s-pb and
//! k8s-openapi crates by `schema/generate.py`: field numbers and types from the former, JSON names and required
//! fields from the latter).
//!
//! JSON follows Go's encoding of the API types: absent fields are omitted, zero values of optional scalars are
//! omitted (`omitempty`), `Time` is RFC 3339 to the second, `MicroTime` to the microsecond, `Duration` is Go's
//! duration string, `Quantity` a string, `IntOrString` a number or a string, `RawExtension`/`FieldsV1`/`JSON`
//! the JSON they hold, `bytes` base64, single-`items` wrappers (`Verbs`, `ExtraValue`) plain arrays.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use crate::pb::{self, Wire};

const SCHEMA: &str = include_str!("../schema/k8s-proto-schema.txt");

#[derive(Debug, Clone)]
enum Ty {
    Scalar(String),
    Msg(String),
    Map(Box<Ty>),
}

#[derive(Debug, Clone)]
struct Field {
    json: String,
    ty: Ty,
    repeated: bool,
    required: bool,
    /// An embedded Go struct (`json:",inline"`): its fields go into the parent.
    inline: bool,
}

#[derive(Debug, Default)]
struct Schema {
    messages: HashMap<String, HashMap<u32, Field>>,
    resources: HashMap<(String, String), String>,
    /// apiVersion → module of its resources.
    modules: HashMap<String, String>,
}

fn ty(s: &str) -> Ty {
    if let Some(m) = s.strip_prefix("msg:") {
        Ty::Msg(m.to_string())
    } else if let Some(rest) = s.strip_prefix("map:") {
        // keys are strings in every Kubernetes map
        let v = rest.split_once(':').map_or("string", |(_, v)| v);
        Ty::Map(Box::new(ty(v)))
    } else {
        Ty::Scalar(s.to_string())
    }
}

fn schema() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(|| {
        let mut s = Schema::default();
        let mut cur: Option<String> = None;
        for line in SCHEMA.lines() {
            let p: Vec<&str> = line.split(' ').collect();
            match p.as_slice() {
                ["M", name] => {
                    s.messages.insert(name.to_string(), HashMap::new());
                    cur = Some(name.to_string());
                }
                ["F", num, json, t, card, req] => {
                    if let (Some(c), Ok(n)) = (&cur, num.parse::<u32>()) {
                        s.messages.get_mut(c).expect("current message").insert(
                            n,
                            Field {
                                json: json.to_string(),
                                ty: ty(t),
                                repeated: *card == "r",
                                required: *req == "1",
                                inline: *req == "2",
                            },
                        );
                    }
                }
                ["R", av, kind, path] => {
                    s.resources.insert((av.to_string(), kind.to_string()), path.to_string());
                    if let Some((m, _)) = path.rsplit_once('.') {
                        s.modules.entry(av.to_string()).or_insert_with(|| m.to_string());
                    }
                }
                _ => {}
            }
        }
        s
    })
}

/// The message of a kind: its resource entry, or a message of that name in the API version's module, or in
/// any module of that version (options types live in `meta/v1`).
pub fn message_for(api_version: &str, kind: &str) -> Option<String> {
    let s = schema();
    if let Some(p) = s.resources.get(&(api_version.to_string(), kind.to_string())) {
        return Some(p.clone());
    }
    if let Some(m) = s.modules.get(api_version) {
        let p = format!("{m}.{kind}");
        if s.messages.contains_key(&p) {
            return Some(p);
        }
    }
    let version = api_version.rsplit('/').next().unwrap_or(api_version);
    let mut found: Vec<&String> = s.messages.keys().filter(|k| k.ends_with(&format!(".{version}.{kind}"))).collect();
    found.sort();
    found.first().map(|s| s.to_string())
}

/// Decodes an object's protobuf bytes (the envelope's `raw`) to JSON with `apiVersion` and `kind` first.
pub fn object(api_version: &str, kind: &str, raw: &[u8]) -> Result<Value, String> {
    let msg =
        message_for(api_version, kind).ok_or_else(|| format!("no protobuf message known for {api_version} {kind}"))?;
    let body = message(&msg, raw, 0)?;
    let mut out = Map::new();
    out.insert("kind".into(), json!(kind));
    out.insert("apiVersion".into(), json!(api_version));
    if let Value::Object(m) = body {
        for (k, v) in m {
            out.insert(k, v);
        }
    }
    Ok(Value::Object(out))
}

fn b64(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// RFC 3339 in UTC; `micros` adds six fractional digits (MicroTime).
pub fn rfc3339(seconds: i64, nanos: i32, micros: bool) -> String {
    let (days, secs) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (y, mo, d) = civil(days);
    let (h, mi, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if micros {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:06}Z", nanos / 1000)
    } else {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }
}

/// Go's `time.Duration.String()`.
pub fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let neg = nanos < 0;
    let u = nanos.unsigned_abs();
    let frac = |v: u64, digits: u32| -> String {
        let unit = 10u64.pow(digits);
        let (w, f) = (v / unit, v % unit);
        if f == 0 {
            return w.to_string();
        }
        let s = format!("{f:0width$}", width = digits as usize);
        format!("{w}.{}", s.trim_end_matches('0'))
    };
    let body = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", frac(u, 3))
    } else if u < 1_000_000_000 {
        format!("{}ms", frac(u, 6))
    } else {
        let secs_total = u / 1_000_000_000;
        let (h, m) = (secs_total / 3600, secs_total % 3600 / 60);
        let s = frac(u % 60_000_000_000, 9);
        let mut out = String::new();
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&format!("{s}s"));
        out
    };
    if neg {
        format!("-{body}")
    } else {
        body
    }
}

fn raw_json(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or_else(|_| Value::String(b64(b)))
}

fn scalar(t: &str, w: &Wire<'_>) -> Result<Value, String> {
    Ok(match (t, w) {
        ("string", Wire::Bytes(b)) => Value::String(String::from_utf8_lossy(b).into()),
        ("bytes", Wire::Bytes(b)) => Value::String(b64(b)),
        ("bool", Wire::Varint(v)) => Value::Bool(*v != 0),
        ("int32", Wire::Varint(v)) => json!(*v as i64 as i32),
        ("int64", Wire::Varint(v)) => json!(*v as i64),
        ("uint32", Wire::Varint(v)) => json!(*v as u32),
        ("uint64", Wire::Varint(v)) => json!(*v),
        ("sint32" | "sint64", Wire::Varint(v)) => json!(((*v >> 1) as i64) ^ -((*v & 1) as i64)),
        ("double", Wire::Fixed64(v)) => json!(f64::from_bits(*v)),
        ("float", Wire::Fixed32(v)) => json!(f32::from_bits(*v) as f64),
        ("fixed64", Wire::Fixed64(v)) => json!(*v),
        ("fixed32", Wire::Fixed32(v)) => json!(*v),
        (t, w) => return Err(format!("a {t} field arrived as {w:?}")),
    })
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Null => true,
    }
}

fn value(f: &Field, w: &Wire<'_>, depth: u32) -> Result<Value, String> {
    match &f.ty {
        Ty::Scalar(t) => scalar(t, w),
        Ty::Msg(m) => match w {
            Wire::Bytes(b) => message(m, b, depth + 1),
            other => Err(format!("message field {} arrived as {other:?}", f.json)),
        },
        Ty::Map(_) => Err("map handled by the caller".into()),
    }
}

/// Decodes one message to JSON.
fn message(name: &str, b: &[u8], depth: u32) -> Result<Value, String> {
    if depth > 64 {
        return Err("nesting deeper than 64 messages".into());
    }
    let fields = pb::fields(b)?;
    let get = |n: u32| fields.iter().rev().find(|(k, _)| *k == n).map(|(_, w)| *w);
    let int = |n: u32| match get(n) {
        Some(Wire::Varint(v)) => v as i64,
        _ => 0,
    };
    let bytes = |n: u32| match get(n) {
        Some(Wire::Bytes(v)) => v,
        _ => &[][..],
    };
    let short = name.rsplit('.').next().unwrap_or(name);
    // the API's own JSON forms of its wrapper types
    match name {
        // Go's zero time marshals as null
        "apimachinery.pkg.apis.meta.v1.Time" | "apimachinery.pkg.apis.meta.v1.MicroTime"
            if int(1) == 0 && int(2) == 0 =>
        {
            return Ok(Value::Null)
        }
        "apimachinery.pkg.apis.meta.v1.Time" => return Ok(json!(rfc3339(int(1), int(2) as i32, false))),
        "apimachinery.pkg.apis.meta.v1.MicroTime" => return Ok(json!(rfc3339(int(1), int(2) as i32, true))),
        "apimachinery.pkg.apis.meta.v1.Duration" => return Ok(json!(go_duration(int(1)))),
        "apimachinery.pkg.api.resource.Quantity" => return Ok(json!(String::from_utf8_lossy(bytes(1)))),
        "apimachinery.pkg.util.intstr.IntOrString" => {
            return Ok(if int(1) == 1 { json!(String::from_utf8_lossy(bytes(3))) } else { json!(int(2) as i32) });
        }
        "apimachinery.pkg.runtime.RawExtension" | "apimachinery.pkg.apis.meta.v1.FieldsV1" => {
            return Ok(raw_json(bytes(1)))
        }
        _ => {}
    }
    if name.starts_with("apiextensions_apiserver.") {
        match short {
            "JSON" => return Ok(raw_json(bytes(1))),
            "JSONSchemaPropsOrArray" => {
                let items: Vec<Value> = fields
                    .iter()
                    .filter(|(k, _)| *k == 2)
                    .filter_map(|(_, w)| {
                        if let Wire::Bytes(b) = w {
                            message(&name.replace("OrArray", ""), b, depth + 1).ok()
                        } else {
                            None
                        }
                    })
                    .collect();
                return if !items.is_empty() {
                    Ok(Value::Array(items))
                } else {
                    message(&name.replace("OrArray", ""), bytes(1), depth + 1)
                };
            }
            "JSONSchemaPropsOrBool" => {
                return if get(2).is_some() {
                    message(&name.replace("OrBool", ""), bytes(2), depth + 1)
                } else {
                    Ok(json!(int(1) != 0))
                };
            }
            "JSONSchemaPropsOrStringArray" => {
                let prop: Vec<Value> = fields
                    .iter()
                    .filter(|(k, _)| *k == 2)
                    .filter_map(
                        |(_, w)| if let Wire::Bytes(b) = w { Some(json!(String::from_utf8_lossy(b))) } else { None },
                    )
                    .collect();
                return if !prop.is_empty() {
                    Ok(Value::Array(prop))
                } else {
                    message(&name.replace("OrStringArray", ""), bytes(1), depth + 1)
                };
            }
            _ => {}
        }
    }
    let schema = schema();
    let Some(spec) = schema.messages.get(name) else { return Err(format!("unknown message {name}")) };
    // `repeated string items = 1` alone: a Go slice type that marshals as a plain array (Verbs, ExtraValue)
    if spec.len() == 1 && spec.get(&1).is_some_and(|f| f.json == "items" && f.repeated && matches!(f.ty, Ty::Scalar(_)))
    {
        let items: Result<Vec<Value>, String> =
            fields.iter().filter(|(k, _)| *k == 1).map(|(_, w)| scalar("string", w)).collect();
        return Ok(Value::Array(items?));
    }
    let mut out: Map<String, Value> = Map::new();
    let mut order: Vec<u32> = spec.keys().copied().collect();
    order.sort_unstable();
    for num in order {
        let f = &spec[&num];
        let present: Vec<&Wire<'_>> = fields.iter().filter(|(k, _)| *k == num).map(|(_, w)| w).collect();
        if present.is_empty() {
            continue;
        }
        let v = match &f.ty {
            Ty::Map(vt) => {
                let mut m = Map::new();
                for w in &present {
                    let Wire::Bytes(e) = w else { return Err(format!("map {} entry is not a message", f.json)) };
                    let ef = pb::fields(e)?;
                    let k = ef.iter().find(|(n, _)| *n == 1).map(|(_, w)| match w {
                        Wire::Bytes(b) => String::from_utf8_lossy(b).to_string(),
                        Wire::Varint(v) => v.to_string(),
                        _ => String::new(),
                    });
                    let vf = Field {
                        json: f.json.clone(),
                        ty: (**vt).clone(),
                        repeated: false,
                        required: false,
                        inline: false,
                    };
                    let val = match ef.iter().find(|(n, _)| *n == 2) {
                        Some((_, w)) => value(&vf, w, depth)?,
                        None => match &**vt {
                            Ty::Scalar(t) if t == "string" || t == "bytes" => json!(""),
                            Ty::Msg(m) => message(m, &[], depth + 1)?,
                            _ => json!(0),
                        },
                    };
                    m.insert(k.unwrap_or_default(), val);
                }
                Value::Object(m)
            }
            _ if f.repeated => {
                let mut items = Vec::new();
                for w in &present {
                    match (&f.ty, w) {
                        // packed numbers
                        (Ty::Scalar(t), Wire::Bytes(b)) if t != "string" && t != "bytes" => {
                            let mut pos = 0;
                            while pos < b.len() {
                                let v = pb::varint(b, &mut pos)?;
                                items.push(scalar(t, &Wire::Varint(v))?);
                            }
                        }
                        _ => items.push(value(f, w, depth)?),
                    }
                }
                Value::Array(items)
            }
            _ => value(f, present[present.len() - 1], depth)?,
        };
        if f.inline {
            if let Value::Object(m) = v {
                for (k, x) in m {
                    out.insert(k, x);
                }
            }
            continue;
        }
        let scalar_zero = matches!(f.ty, Ty::Scalar(_)) && !f.repeated && is_zero(&v);
        let empty_collection = (f.repeated || matches!(f.ty, Ty::Map(_))) && is_zero(&v);
        if (scalar_zero || empty_collection) && !f.required {
            continue;
        }
        out.insert(f.json.clone(), v);
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_print_like_go() {
        assert_eq!(rfc3339(0, 0, false), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000, 123_456_789, true), "2023-11-14T22:13:20.123456Z");
        assert_eq!(rfc3339(951_782_400, 0, false), "2000-02-29T00:00:00Z");
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(2_000_000), "2ms");
        assert_eq!(go_duration(3_723_000_000_004), "1h2m3.000000004s");
        assert_eq!(go_duration(-90_000_000_000), "-1m30s");
    }

    #[test]
    fn kinds_find_their_messages() {
        assert_eq!(message_for("v1", "ConfigMap").as_deref(), Some("api.core.v1.ConfigMap"));
        assert_eq!(message_for("apps/v1", "Deployment").as_deref(), Some("api.apps.v1.Deployment"));
        assert!(message_for("v1", "NoSuchKind").is_none());
    }
}
