//! The OpenAPI document: structurally valid, and naming exactly the `/v1`
//! routes the server has (each probed on the running binary).

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use super::get;
use crate::util::{status_and_json, within, Env};

/// Follows a local `$ref` (`#/a/b`).
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// Every `$ref` in `value`, with where it was found.
fn refs(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(object) => {
            for (key, member) in object {
                if key == "$ref" {
                    out.push((at.to_string(), member.as_str().unwrap_or("").to_string()));
                } else {
                    refs(member, &format!("{at}/{key}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                refs(item, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

#[tokio::test]
async fn the_openapi_document_is_valid_and_matches_the_routes() {
    let env = Env::start().await;
    let (status, doc) = get(&env, "/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "OpenAPI 3"
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    // Every reference resolves.
    let mut found = Vec::new();
    refs(&doc, "", &mut found);
    assert!(!found.is_empty());
    for (at, reference) in &found {
        assert!(
            resolve(&doc, reference).is_some(),
            "{at}: $ref {reference:?} does not resolve"
        );
    }

    // Every operation has responses; every 4xx/5xx is a problem; every
    // path template variable is a declared path parameter.
    let paths = doc["paths"].as_object().expect("paths");
    let mut documented = BTreeSet::new();
    for (path, item) in paths {
        let variables: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            documented.insert((method.to_uppercase(), path.clone()));
            let responses = operation["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path}: no responses"));
            assert!(!responses.is_empty(), "{method} {path}: no responses");
            for (code, response) in responses {
                let response = match response.get("$ref").and_then(Value::as_str) {
                    Some(r) => resolve(&doc, r).expect("resolved above"),
                    None => response,
                };
                assert!(
                    response["description"].is_string(),
                    "{method} {path} {code}: no description"
                );
                if code.starts_with('4') || code.starts_with('5') {
                    assert!(
                        response["content"]["application/problem+json"].is_object(),
                        "{method} {path} {code}: not a problem"
                    );
                }
            }
            let parameters = item["parameters"]
                .as_array()
                .into_iter()
                .chain(operation["parameters"].as_array())
                .flatten()
                .map(|p| match p.get("$ref").and_then(Value::as_str) {
                    Some(r) => resolve(&doc, r).expect("resolved above"),
                    None => p,
                });
            let declared: BTreeSet<&str> = parameters
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            assert_eq!(declared, variables, "{method} {path}: path parameters");
        }
    }

    // The document names exactly the routes the server has.
    let routes: BTreeSet<(String, String)> = herald_server::V1_ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    assert_eq!(routes.len(), herald_server::V1_ROUTES.len(), "duplicate routes");
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routes).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the document: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented but not in V1_ROUTES: {unrouted:?}"
    );

    // And each of them is routed: not the fallback, not 405.
    for (method, path) in &routes {
        let concrete = path
            .replace("{seq}", "1")
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let method_ = Method::from_bytes(method.as_bytes()).unwrap();
        let response = within("probe", env.http.request(method_, env.url(&concrete)).send())
            .await
            .expect("probe");
        let status = response.status().as_u16();
        let (_, body) = status_and_json(response).await;
        let routed = status != 405
            && !(status == 404 && body["detail"].as_str().unwrap_or("").starts_with("no such path"));
        assert!(
            routed,
            "{method} {concrete} ({path}) is not routed: {status} {body}"
        );
    }
}
