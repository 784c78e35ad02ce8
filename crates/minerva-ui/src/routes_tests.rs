use super::*;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

fn app() -> (tempfile::TempDir, Router) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("minerva.db")).unwrap());
    let server = Router::new().route("/", get(|| async { "Ollama is running" }));
    let facts = ServerFacts {
        memory_budget_bytes: Some(1 << 30),
        catalog: vec![Offer {
            name: "tiny:1b".into(),
            size_bytes: 1234,
            default: true,
        }],
    };
    (dir, attach(server, store, facts))
}

async fn send(app: &Router, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Vec<u8>) {
    let mut request = Request::builder().method(method).uri(uri);
    let body = match body {
        Some(v) => {
            request = request.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, bytes.to_vec())
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[tokio::test]
async fn root_is_the_page_for_browsers_and_ollama_for_clients() {
    let (_dir, app) = app();
    let browser = Request::get("/")
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(browser).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(response
        .headers()
        .contains_key(header::CONTENT_SECURITY_POLICY));
    let page = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&page).contains("<html"));

    for accept in [None, Some("*/*"), Some("application/json")] {
        let mut r = Request::get("/");
        if let Some(a) = accept {
            r = r.header("accept", a);
        }
        let response = app
            .clone()
            .oneshot(r.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let text = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&text[..], b"Ollama is running", "accept {accept:?}");
    }
    let (status, page) = send(&app, "GET", "/ui/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page, assets::index());
    let (status, _) = send(&app, "GET", "/ui/no-such-file.js", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn conversation_api_round_trip() {
    let (_dir, app) = app();
    let base = "/ui/api/v1/conversations";
    let (status, body) = send(
        &app,
        "POST",
        base,
        Some(json!({"title": "first", "model": "m"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let created = json_of(&body);
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["title"], "first");
    assert_eq!(created["messages"], json!([]));

    let messages = json!([
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello", "stats": {"completion_tokens": 2}}
    ]);
    let (status, body) = send(
        &app,
        "PATCH",
        &format!("{base}/{id}"),
        Some(json!({"messages": messages, "system": "be brief"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["messages"], messages);

    let (status, body) = send(&app, "GET", &format!("{base}/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let got = json_of(&body);
    assert_eq!(got["system"], "be brief");
    assert_eq!(got["title"], "first");
    assert_eq!(got["messages"], messages);

    let (_, body) = send(&app, "GET", &format!("{base}?q=HELLO"), None).await;
    assert_eq!(json_of(&body)["conversations"][0]["id"], id.as_str());
    let (_, body) = send(&app, "GET", &format!("{base}?q=nothing"), None).await;
    assert_eq!(json_of(&body)["conversations"], json!([]));

    let (status, body) = send(
        &app,
        "PATCH",
        &format!("{base}/{id}"),
        Some(json!({"messages": [{"role": "robot", "content": ""}]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&body)["error"]["code"], "invalid_request");
    let (status, _) = send(
        &app,
        "PATCH",
        &format!("{base}/{id}"),
        Some(json!({"title": 5})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, _) = send(&app, "DELETE", &format!("{base}/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for method in ["GET", "DELETE"] {
        let (status, body) = send(&app, method, &format!("{base}/{id}"), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
        assert_eq!(json_of(&body)["error"]["code"], "not_found");
    }
    let (_, body) = send(&app, "GET", base, None).await;
    assert_eq!(json_of(&body)["conversations"], json!([]));
}

#[tokio::test]
async fn messages_with_images_fit_up_to_the_body_limit() {
    let (_dir, app) = app();
    let base = "/ui/api/v1/conversations";
    // A few images' worth of base64: more than axum's default limit of 2 MiB.
    let data = "A".repeat(6 << 20);
    let messages = json!([
        {"role": "user", "content": [
            {"type": "text", "text": "what is in these?"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{data}")}},
            {"type": "image_url", "image_url": {"url": format!("data:image/jpeg;base64,{data}")}}
        ]},
        {"role": "assistant", "content": "two pictures"}
    ]);
    let (status, body) = send(&app, "POST", base, Some(json!({"messages": messages}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = json_of(&body)["id"].as_str().unwrap().to_string();
    let (status, body) = send(&app, "GET", &format!("{base}/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["messages"], messages);
    let (_, body) = send(&app, "GET", &format!("{base}?q=in%20these"), None).await;
    assert_eq!(json_of(&body)["conversations"][0]["id"], id.as_str());
    let (_, body) = send(&app, "GET", &format!("{base}?q=AAAA"), None).await;
    assert_eq!(json_of(&body)["conversations"], json!([]));

    // Past the limit: a 413 that says what to do.
    let mut huge = br#"{"messages": [{"role": "user", "content": ""#.to_vec();
    huge.resize(MAX_BODY_BYTES + 1, b'A');
    huge.extend_from_slice(br#""}]}"#);
    let response = app
        .clone()
        .oneshot(
            Request::builder()
                .method("PATCH")
                .uri(format!("{base}/{id}"))
                .header("content-type", "application/json")
                .body(Body::from(huge))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let error = &json_of(&body)["error"];
    assert_eq!(error["code"], "payload_too_large");
    assert!(
        error["message"].as_str().unwrap().contains("64 MiB"),
        "{error}"
    );
}

#[tokio::test]
async fn the_page_is_the_build_or_says_how_to_build_it() {
    let (_dir, app) = app();
    let (status, page) = send(&app, "GET", "/ui/", None).await;
    assert_eq!(status, StatusCode::OK);
    let page = String::from_utf8(page).unwrap();
    if crate::is_built() {
        assert!(page.contains("/ui/assets/app.js"), "{page}");
        let (status, js) = send(&app, "GET", "/ui/assets/app.js", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!js.is_empty());
    } else {
        // A cargo-only build (no ui/dist): a page that says how to build the UI.
        assert!(page.contains("scripts/build-ui.sh"), "{page}");
        let (status, _) = send(&app, "GET", "/ui/assets/app.js", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn server_facts_are_served() {
    let (_dir, app) = app();
    let (status, body) = send(&app, "GET", "/ui/api/v1/server", None).await;
    assert_eq!(status, StatusCode::OK);
    let facts = json_of(&body);
    assert_eq!(facts["memory_budget_bytes"], 1 << 30);
    assert_eq!(facts["catalog"][0]["name"], "tiny:1b");
    assert_eq!(facts["catalog"][0]["size_bytes"], 1234);
    assert_eq!(facts["catalog"][0]["default"], true);
}
