//! A cookie-jar HTTP client that acts like a browser without following redirects, and the
//! whole login dance with the test IdP.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::cookie::Jar;
use reqwest::{Client, Response, StatusCode};
use url::Url;

pub struct Browser {
    pub client: Client,
    pub jar: Arc<Jar>,
}

/// Every hop of a login, for assertions and replays.
pub struct LoginTrace {
    pub hops: Vec<Hop>,
    pub final_response: Response,
}

#[derive(Debug, Clone)]
pub struct Hop {
    pub url: String,
    pub status: u16,
    pub set_cookies: Vec<String>,
}

impl LoginTrace {
    /// The first hop whose URL contains `needle`.
    pub fn hop(&self, needle: &str) -> Option<&Hop> {
        self.hops.iter().find(|h| h.url.contains(needle))
    }
}

impl Browser {
    /// A browser resolving the test hosts to the proxy on `port`, trusting `root_pem` if given.
    pub fn new(port: u16, root_pem: Option<&[u8]>) -> Browser {
        Browser::with_identity(port, root_pem, None)
    }

    /// A browser that also presents a client certificate (`identity`: certificate and key PEM).
    pub fn with_identity(port: u16, root_pem: Option<&[u8]>, identity: Option<&[u8]>) -> Browser {
        let jar = Arc::new(Jar::default());
        let loopback: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let mut builder = Client::builder();
        if let Some(pem) = root_pem {
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(pem).expect("certificate"));
        }
        if let Some(pem) = identity {
            builder = builder.identity(reqwest::Identity::from_pem(pem).expect("client identity"));
        }
        let client = builder
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .resolve("app.localhost", loopback)
            .resolve("admin.localhost", loopback)
            .resolve("cert.localhost", loopback)
            .resolve("api.localhost", loopback)
            .resolve("rewrite.localhost", loopback)
            .resolve("a.wild.localhost", loopback)
            .resolve("deep.b.wild.localhost", loopback)
            .resolve("wild.localhost", loopback)
            .resolve("go.localhost", loopback)
            .resolve("static.localhost", loopback)
            .resolve("keepalive.localhost", loopback)
            .resolve("hangup.localhost", loopback)
            .resolve("lb.localhost", loopback)
            .resolve("ws.localhost", loopback)
            .resolve("claims.localhost", loopback)
            .resolve("groups.localhost", loopback)
            .resolve("fresh.localhost", loopback)
            .resolve("fresh2.localhost", loopback)
            .resolve("tlsca.localhost", loopback)
            .resolve("tlsnoca.localhost", loopback)
            .resolve("tlsskip.localhost", loopback)
            .resolve("nows.localhost", loopback)
            .resolve("authenticate.localhost", loopback)
            .build()
            .expect("client");
        Browser { client, jar }
    }

    /// GET as a browser would (asks for HTML).
    pub async fn get_html(&self, url: &str) -> reqwest::Result<Response> {
        self.client.get(url).header("accept", "text/html,application/xhtml+xml").send().await
    }

    /// GET as an API client would (asks for JSON).
    pub async fn get_json(&self, url: &str) -> reqwest::Result<Response> {
        self.client.get(url).header("accept", "application/json").send().await
    }

    /// Start at `url` and follow the whole login as `user` (any password), back to `url`.
    pub async fn login(&self, url: &str, user: &str) -> LoginTrace {
        let mut hops = Vec::new();
        let mut current = Url::parse(url).expect("url");
        for _ in 0..20 {
            let response = if current.path().starts_with("/interaction/") {
                self.client
                    .post(current.clone())
                    .form(&[("prompt", "login"), ("login", user), ("password", "x")])
                    .send()
                    .await
            } else {
                self.get_html(current.as_str()).await
            }
            .unwrap_or_else(|e| panic!("login hop {current} failed: {e}"));
            hops.push(Hop {
                url: current.to_string(),
                status: response.status().as_u16(),
                set_cookies: response
                    .headers()
                    .get_all("set-cookie")
                    .iter()
                    .filter_map(|v| v.to_str().ok().map(str::to_owned))
                    .collect(),
            });
            if !response.status().is_redirection() {
                return LoginTrace { hops, final_response: response };
            }
            let location = response
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .expect("redirect without location");
            current = current.join(location).expect("location parses");
        }
        panic!("login did not finish in 20 hops: {hops:?}");
    }
}

/// Status helper for assertions.
pub fn status(r: &Response) -> StatusCode {
    r.status()
}
