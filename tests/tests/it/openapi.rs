//! The model registry's OpenAPI document (`GET /openapi.json`, generated from its route table by
//! `authz_axum::openapi`): compared with the checked-in `tests/snapshots/openapi.json`
//! (regenerate with `AUTHZ_UPDATE_SNAPSHOTS=1 cargo test -p authz-tests --test it openapi`), the
//! authorization it describes checked against the route declarations, and the document
//! validated against the OpenAPI 3.1 schema by a validator no one here wrote: Python's
//! `openapi-spec-validator`, installed into `$AUTHZ_INTEROP_DIR/venv` by `.ci/interop.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;

use model_registry::{Config, start};
use serde_json::{Value, json};

use crate::common::{http, init_tracing};

const SNAPSHOT: &str = "snapshots/openapi.json";

/// `$AUTHZ_INTEROP_DIR/venv/bin/python` when it has `openapi_spec_validator`; else `None` and a
/// SKIPPED line (a failure on CI).
fn validator_python() -> Option<PathBuf> {
    let python = std::env::var_os("AUTHZ_INTEROP_DIR").map(|d| Path::new(&d).join("venv/bin/python"));
    match python {
        Some(p)
            if p.exists()
                && Command::new(&p)
                    .args(["-c", "import openapi_spec_validator"])
                    .output()
                    .is_ok_and(|o| o.status.success()) =>
        {
            Some(p)
        }
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must validate the OpenAPI document (.ci/interop.sh installs openapi-spec-validator)"
            );
            eprintln!("SKIPPED: OpenAPI 3.1 validation (run `source .ci/interop.sh` first; needs python3)");
            None
        }
    }
}

/// Object keys sorted at every level, so the snapshot file is stable whatever order the
/// document's maps serialise in.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), canonical(&m[k]))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        v => v.clone(),
    }
}

/// The lines that differ, between the common head and tail of both texts, with a little
/// context: enough to see what changed in a JSON document of a few hundred lines.
fn line_diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let head = e.iter().zip(&a).take_while(|(x, y)| x == y).count();
    let tail = e[head..]
        .iter()
        .rev()
        .zip(a[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let mut out = String::new();
    for line in &e[head.saturating_sub(3)..head] {
        out.push_str(&format!("  {line}\n"));
    }
    for line in &e[head..e.len() - tail] {
        out.push_str(&format!("- {line}\n"));
    }
    for line in &a[head..a.len() - tail] {
        out.push_str(&format!("+ {line}\n"));
    }
    for line in e[e.len() - tail..].iter().take(3) {
        out.push_str(&format!("  {line}\n"));
    }
    out
}

fn validate(python: &Path, file: &Path) -> std::process::Output {
    Command::new(python)
        .args(["-m", "openapi_spec_validator", "--schema", "3.1"])
        .arg(file)
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_openapi_document_matches_the_snapshot_the_declarations_and_the_3_1_schema() {
    init_tracing();
    let server = start(Config::with_bind("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let r = http()
        .get(format!("{}/openapi.json", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "/openapi.json is public");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let doc: Value = r.json().await.unwrap();
    let routes = server.routes.clone();
    server.stop().await;

    // What the document says about authorization, against the declarations.
    assert_eq!(doc["openapi"], "3.1.0");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(
        schemes["bearer"],
        json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
               "description": schemes["bearer"]["description"].clone()})
    );
    assert_eq!(schemes["dpop"]["type"], "http");
    assert_eq!(schemes["dpop"]["scheme"], "DPoP");
    assert_eq!(schemes["apiKey"]["scheme"], "bearer");
    let deploy = &doc["paths"]["/models/{id}/deploy"]["post"];
    assert_eq!(deploy["x-required-permissions"], json!(["model:deploy"]));
    assert_eq!(
        deploy["security"],
        json!([{"dpop": []}]),
        "the deploy route takes DPoP only"
    );
    assert_eq!(deploy["x-requirement"], "\"model:deploy\"");
    assert_eq!(deploy["parameters"][0]["name"], "id");
    assert_eq!(deploy["parameters"][0]["in"], "path");
    for code in ["400", "401", "403", "429", "503"] {
        assert!(deploy["responses"][code]["$ref"].is_string(), "{code}: {deploy}");
    }
    let run = &doc["paths"]["/models/{id}/run"]["post"];
    assert_eq!(
        run["security"],
        json!([{"bearer": []}, {"apiKey": []}, {"dpop": []}]),
        "other protected routes take any of the schemes"
    );
    for public in ["/healthz", "/openapi.json", "/docs"] {
        assert_eq!(doc["paths"][public]["get"]["security"], json!([]), "{public}");
        assert_eq!(doc["paths"][public]["get"]["x-required-permissions"], json!([]));
    }
    let api_keys = &doc["paths"]["/api-keys"]["post"];
    assert_eq!(api_keys["x-required-roles"], json!(["admin"]), "{api_keys}");
    let unauthorized = &doc["components"]["responses"]["Unauthorized"];
    assert!(unauthorized["headers"]["WWW-Authenticate"].is_object());
    assert_eq!(
        unauthorized["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
    assert_eq!(
        doc["components"]["schemas"]["Problem"]["required"],
        json!(["type", "title", "status", "detail"])
    );
    // One operation per route of the table, each with the table's requirement.
    let mut operations = 0;
    for e in routes.entries() {
        let op = &doc["paths"][e.path.as_str()][e.method.as_str().to_ascii_lowercase()];
        assert_eq!(
            op["x-requirement"],
            e.requirement.to_string(),
            "{} {}",
            e.method,
            e.path
        );
        let perms: Vec<&str> = e.requirement.permissions();
        let mut listed: Vec<&str> = op["x-required-permissions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let mut perms_sorted = perms.clone();
        perms_sorted.sort_unstable();
        perms_sorted.dedup();
        listed.sort_unstable();
        assert_eq!(listed, perms_sorted, "{} {}", e.method, e.path);
        operations += 1;
    }
    let in_doc: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(in_doc, operations, "no operation without a route");

    // The snapshot.
    let pretty = format!("{}\n", serde_json::to_string_pretty(&canonical(&doc)).unwrap());
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(SNAPSHOT);
    if std::env::var_os("AUTHZ_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, &pretty).unwrap();
        eprintln!("updated {}", file.display());
    } else {
        let expected = std::fs::read_to_string(&file).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; create it with AUTHZ_UPDATE_SNAPSHOTS=1 cargo test -p authz-tests --test it openapi",
                file.display()
            )
        });
        assert!(
            expected == pretty,
            "GET /openapi.json differs from tests/{SNAPSHOT} (if the change is intended, regenerate \
             it with AUTHZ_UPDATE_SNAPSHOTS=1 cargo test -p authz-tests --test it openapi):\n{}",
            line_diff(&expected, &pretty)
        );
    }

    // A real OpenAPI 3.1 validator: the document passes, and a broken copy does not (so the
    // validator did look).
    let Some(python) = validator_python() else { return };
    let dir = std::env::temp_dir().join(format!("authz-openapi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("openapi.json");
    std::fs::write(&good, &pretty).unwrap();
    let out = validate(&python, &good);
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut broken = doc.clone();
    broken["paths"]["/models/{id}/deploy"]["post"]["parameters"] = json!([]);
    let bad = dir.join("broken.json");
    std::fs::write(&bad, broken.to_string()).unwrap();
    assert!(
        !validate(&python, &bad).status.success(),
        "the validator accepted an operation without its path parameter"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The API reference page and its assets are public, same-origin only and script-free inline.
#[tokio::test]
async fn the_api_reference_page_is_served_with_a_strict_csp() {
    init_tracing();
    let server = start(Config::with_bind("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    for (path, ty) in [
        ("/docs", "text/html"),
        ("/docs/docs.js", "text/javascript"),
        ("/docs/docs.css", "text/css"),
    ] {
        let r = http()
            .get(format!("{}{path}", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(
            r.headers()["content-type"].to_str().unwrap().starts_with(ty),
            "{path}"
        );
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        for d in ["default-src 'none'", "script-src 'self'", "connect-src 'self'"] {
            assert!(csp.contains(d), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{csp}");
    }
    let page = http()
        .get(format!("{}/docs", server.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<script src=\"/docs/docs.js\""));
    assert!(!page.contains("<script>"), "no inline script");
    server.stop().await;
}
