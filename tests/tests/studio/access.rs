//! Safe by default: the access token, the cookie it becomes, the Host check, CSRF.

use parity_tests::parity_test;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, HOST, ORIGIN, REFERER};

use crate::web::Web;

parity_test!(async fn requests_without_the_token_are_refused(t) {
    let web = Web::start(&t, false).await;
    let base = &web.base;
    let refused = web.raw().get(format!("{base}/tables/tasks")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let body = refused.text().await.unwrap();
    assert!(!body.contains("<table"), "a refused request saw rows: {body}");

    let wrong = web.raw().get(format!("{base}/?token=0000")).send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let forged = web
        .raw()
        .get(format!("{base}/"))
        .header(COOKIE, format!("studio_{}=0000", web.running.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    // The token becomes an HttpOnly, SameSite=Strict cookie, and leaves the address.
    let token = web.running.studio.access.token().to_owned();
    let first = web
        .raw()
        .get(format!("{base}/tables/tasks?token={token}&sort=id"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let cookie = first.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert_eq!(first.headers()["location"], "/tables/tasks?sort=id");

    assert_eq!(web.get("/").await.status, StatusCode::OK);
    // Another name for 127.0.0.1 (DNS rebinding) is refused even with the cookie.
    let rebound = web
        .raw()
        .get(format!("{base}/"))
        .header(COOKIE, web.cookie())
        .header(HOST, format!("attacker.example:{}", web.running.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), StatusCode::FORBIDDEN);
    // Only GET and POST.
    let put = web
        .raw()
        .put(format!("{base}/"))
        .header(COOKIE, web.cookie())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::METHOD_NOT_ALLOWED);
});

parity_test!(async fn a_post_needs_the_csrf_token_and_studios_own_origin(t) {
    let web = Web::start(&t, true).await;
    let base = &web.base;
    let csrf = web.csrf();
    let post = |origin: Option<&str>, referer: Option<&str>, csrf: &str| {
        let mut request = web
            .raw()
            .post(format!("{base}/"))
            .header(COOKIE, web.cookie())
            .form(&[("csrf", csrf)]);
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        if let Some(referer) = referer {
            request = request.header(REFERER, referer);
        }
        request.send()
    };
    let status = |r: reqwest::Response| r.status();
    assert_eq!(status(post(Some(base), None, "wrong").await.unwrap()), StatusCode::FORBIDDEN);
    assert_eq!(status(post(Some(base), None, "").await.unwrap()), StatusCode::FORBIDDEN);
    assert_eq!(
        status(post(Some("http://attacker.example"), None, &csrf).await.unwrap()),
        StatusCode::FORBIDDEN
    );
    assert_eq!(status(post(None, None, &csrf).await.unwrap()), StatusCode::FORBIDDEN);
    assert_eq!(
        status(post(None, Some("http://attacker.example/x"), &csrf).await.unwrap()),
        StatusCode::FORBIDDEN
    );
    // Past the guard, the route itself answers (`/` takes no POST).
    assert_eq!(web.post("/", &[]).await.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        status(post(None, Some(&format!("{base}/tables")), &csrf).await.unwrap()),
        StatusCode::METHOD_NOT_ALLOWED
    );
});

parity_test!(async fn no_page_shows_the_connection_secret(t) {
    // On Postgres, a URL with a password (the test server trusts local connections, so
    // any password connects).
    let secret = "s3cret-pw";
    let config = match t.direct_url.as_deref() {
        Some(direct) => {
            let mut url = url::Url::parse(direct).unwrap();
            url.set_password(Some(secret)).unwrap();
            dal::Config::postgres(url.as_str()).unwrap()
        }
        None => t.config.clone(),
    };
    let db = dal::Database::connect(&config).await.unwrap();
    let web = Web::start_with(db, config.clone(), false).await;
    let target = config.describe_target();
    for path in ["/", "/tables/users", "/tables/nope", "/find/not-a-uuid"] {
        let body = web.get(path).await.body;
        assert!(body.contains(&studio::html::esc(&target)), "{path} names its database");
        assert!(!body.contains(secret), "{path} shows the password");
        assert!(!body.contains(web.running.studio.access.token()), "{path} shows the token");
    }
});

#[test]
fn studio_refuses_to_listen_beyond_loopback() {
    let options = studio::Options::at("0.0.0.0:0".parse().unwrap());
    assert!(matches!(
        options.check(dal::AppEnv::Local),
        Err(studio::OptionsError::NotLoopback(_))
    ));
}
