//! The canonical protobuf JSON mapping of the contract's messages, for the
//! HTTP adapters: requests from query parameters or JSON bodies, answers
//! and errors as JSON. The proto stays the one contract: every shape here
//! is a message of `proto/`.

use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use super::invalid_argument;
use crate::{
    domain::{Violations, clip},
    proto as pb,
};

/// Longest text of a parse error quoted back (it may quote the input).
const MAX_ERROR_TEXT: usize = 200;

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET).expect("the built-in descriptor set decodes")
});

fn descriptor(full_name: &str) -> MessageDescriptor {
    POOL.get_message_by_name(full_name)
        .unwrap_or_else(|| panic!("{full_name} is in the descriptor set"))
}

/// `message` (of proto type `full_name`) in the canonical JSON mapping:
/// lowerCamelCase names, fields at their default left out.
pub fn to_json<M: prost::Message>(full_name: &str, message: &M) -> Value {
    let dynamic = DynamicMessage::decode(descriptor(full_name), message.encode_to_vec().as_slice())
        .expect("a message re-decodes as its own type");
    serde_json::to_value(&dynamic).expect("a message serialises as JSON")
}

/// A request message from its JSON (either field-name style). A body that
/// does not parse is an `INVALID_ARGUMENT` naming `field`.
pub fn from_json<M: prost::Message + Default>(
    full_name: &str,
    json: Value,
    field: &str,
) -> Result<M, Status> {
    let bad = |e: &dyn std::fmt::Display| {
        invalid_argument(&Violations::single(
            field,
            format!(
                "is not a valid {full_name} in JSON: {}",
                clip(&e.to_string(), MAX_ERROR_TEXT)
            ),
        ))
    };
    let dynamic = DynamicMessage::deserialize(descriptor(full_name), json).map_err(|e| bad(&e))?;
    dynamic.transcode_to::<M>().map_err(|e| bad(&e))
}

/// The identity parameters a URL may carry without the `customer.` prefix.
const IDENTITY_KEYS: [&str; 5] = [
    "customer_id",
    "email",
    "phone",
    "loyalty_id",
    "anonymous_id",
];

/// A request message from URL query parameters: each key is a field path
/// of the message (`limit`, `anchor_product_ids`, `customer.email`, in
/// proto or JSON names); an identity (`email=…`, `customerId=…`) may leave
/// out `customer.`; a repeated field takes the key once per value.
pub fn from_query<M: prost::Message + Default>(
    full_name: &str,
    query: Option<&str>,
) -> Result<M, Status> {
    let message = descriptor(full_name);
    let mut root = Map::new();
    let mut violations = Violations::default();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let path = match key.as_ref() {
            k if IDENTITY_KEYS.contains(&k) || IDENTITY_KEYS.contains(&snake(k).as_str()) => {
                format!("customer.{k}")
            }
            k => k.to_owned(),
        };
        if let Err(why) = set_path(&message, &mut root, &path, &value) {
            violations.add(clip(&key, 64).into_owned(), why);
        }
    }
    if !violations.is_empty() {
        return Err(invalid_argument(&violations));
    }
    from_json(full_name, Value::Object(root), "query")
}

/// A field mask's JSON form (lowerCamelCase paths, comma-separated) from
/// paths in either style.
pub fn field_mask<'a>(paths: impl Iterator<Item = &'a str>) -> String {
    let camel = |p: &str| {
        let mut out = String::with_capacity(p.len());
        let mut up = false;
        for c in p.trim().chars() {
            match c {
                '_' => up = true,
                c if up => {
                    out.push(c.to_ascii_uppercase());
                    up = false;
                }
                c => out.push(c),
            }
        }
        out
    };
    paths.map(camel).collect::<Vec<_>>().join(",")
}

fn snake(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn field_named(message: &MessageDescriptor, name: &str) -> Option<FieldDescriptor> {
    message
        .get_field_by_name(name)
        .or_else(|| message.get_field_by_json_name(name))
}

/// Sets `path` (dotted) under `object` to `value`, typed by the field.
fn set_path(
    message: &MessageDescriptor,
    object: &mut Map<String, Value>,
    path: &str,
    value: &str,
) -> Result<(), String> {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let field = field_named(message, head).ok_or("is not a parameter of this call")?;
    let slot = field.name().to_owned();
    match (rest, field.kind()) {
        (Some(rest), Kind::Message(inner)) if !field.is_list() && !field.is_map() => {
            let entry = object
                .entry(slot)
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(child) = entry else {
                return Err("is given twice".into());
            };
            set_path(&inner, child, rest, value)
        }
        (Some(_), _) => Err("has no fields to set".into()),
        (None, kind) => {
            let typed = match kind {
                Kind::Bool => Value::Bool(match value {
                    "true" | "1" => true,
                    "false" | "0" | "" => false,
                    _ => return Err("must be true or false".into()),
                }),
                Kind::Message(m) if m.full_name() == "google.protobuf.FieldMask" => {
                    Value::String(field_mask(value.split(',')))
                }
                Kind::Message(_) => {
                    return Err("is a message: set its fields (name.field=…)".into());
                }
                _ => Value::String(value.to_owned()),
            };
            if field.is_list() {
                match object
                    .entry(slot)
                    .or_insert_with(|| Value::Array(Vec::new()))
                {
                    Value::Array(values) => values.push(typed),
                    _ => return Err("is given twice".into()),
                }
            } else if object.insert(slot, typed).is_some() {
                return Err("is given twice".into());
            }
            Ok(())
        }
    }
}

/// The gRPC code's canonical name (`INVALID_ARGUMENT`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The HTTP status of a gRPC code (as `google.rpc.Code` documents it).
pub fn http_status(code: Code) -> http::StatusCode {
    use http::StatusCode as S;
    match code {
        Code::Ok => S::OK,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => S::BAD_REQUEST,
        Code::Unauthenticated => S::UNAUTHORIZED,
        Code::PermissionDenied => S::FORBIDDEN,
        Code::NotFound => S::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => S::CONFLICT,
        Code::ResourceExhausted => S::TOO_MANY_REQUESTS,
        Code::Cancelled => S::from_u16(499).expect("499 is a status code"),
        Code::Unimplemented => S::NOT_IMPLEMENTED,
        Code::Unavailable => S::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => S::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => S::INTERNAL_SERVER_ERROR,
    }
}

/// A status as Google's JSON error (AIP-193): `{"error": {"code": 400,
/// "status": "INVALID_ARGUMENT", "message": …, "details": [BadRequest]}}`.
/// The message is the status's own, which never carries internal text.
pub fn error_json(status: &Status) -> Value {
    let mut error = serde_json::json!({
        "code": http_status(status.code()).as_u16(),
        "status": code_name(status.code()),
        "message": status.message(),
    });
    if let Some(bad) = status.get_details_bad_request() {
        let violations: Vec<Value> = bad
            .field_violations
            .iter()
            .map(|v| serde_json::json!({"field": v.field, "description": v.description}))
            .collect();
        error["details"] = serde_json::json!([{
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": violations,
        }]);
    }
    serde_json::json!({ "error": error })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_fill_the_request_by_field_path() {
        let r: pb::SuggestCrossSellsRequest = from_query(
            "customer_context.v1.SuggestCrossSellsRequest",
            Some("email=maya%40example.com&anchorProductIds=a&anchor_product_ids=b&limit=3"),
        )
        .unwrap();
        assert_eq!(r.anchor_product_ids, ["a", "b"]);
        assert_eq!(r.limit, 3);
        assert_eq!(
            r.customer.unwrap().identity,
            Some(pb::customer_ref::Identity::Email("maya@example.com".into()))
        );
        let r: pb::GetCustomerContextRequest = from_query(
            "customer_context.v1.GetCustomerContextRequest",
            Some("customer.customerId=c1&read_mask=profile,agent_brief,recentBrowsing"),
        )
        .unwrap();
        assert_eq!(
            r.read_mask.unwrap().paths,
            ["profile", "agent_brief", "recent_browsing"]
        );
    }

    #[test]
    fn a_bad_parameter_is_a_violation_naming_it() {
        for (query, field) in [
            ("emial=x", "emial"),
            ("limit=ten", "query"),
            ("email=a&email=b", "email"),
            ("customer=x", "customer"),
        ] {
            let status = from_query::<pb::SuggestCrossSellsRequest>(
                "customer_context.v1.SuggestCrossSellsRequest",
                Some(query),
            )
            .unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{query}");
            let json = error_json(&status);
            assert_eq!(json["error"]["status"], "INVALID_ARGUMENT");
            assert_eq!(json["error"]["code"], 400);
            assert_eq!(
                json["error"]["details"][0]["fieldViolations"][0]["field"], field,
                "{query}: {json}"
            );
        }
    }

    #[test]
    fn answers_use_the_canonical_json_names() {
        let r = pb::SuggestCrossSellsResponse {
            customer_id: "c1".into(),
            ..Default::default()
        };
        let json = to_json("customer_context.v1.SuggestCrossSellsResponse", &r);
        assert_eq!(json, serde_json::json!({"customerId": "c1"}));
    }
}
