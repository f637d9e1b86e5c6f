//! `portcullis policy eval`: what would happen to a request, without running anything.

use std::sync::Arc;

use anyhow::{Context, bail};
use portcullis_policy::{Decision, Input, RequestFacts, UserFacts};
use portcullis_runtime::{Config, now_unix};

/// Who is asking, as given on the command line.
pub struct Who {
    pub email: Option<String>,
    pub user: Option<String>,
    pub claims: Option<String>,
    pub groups: Option<String>,
    pub ip: Option<String>,
}

/// Print the route `url` matches, the decision for `method` and `who`, and the reasons.
pub fn run(config: Arc<Config>, method: &str, url: &str, who: Who) -> anyhow::Result<()> {
    let url = url::Url::parse(url).with_context(|| format!("`{url}` is not a URL"))?;
    let host = url.host_str().context("the URL has no host")?.to_ascii_lowercase();
    let path = portcullis_proxy::path::normalize(url.path())
        .map_err(|e| anyhow::anyhow!("{e} (the proxy answers 400)"))?;
    let Some(route) = config.find_route(&host, url.port(), &path) else {
        println!("route:    none (the proxy answers 404)");
        return Ok(());
    };
    let to: Vec<&str> = route.to.iter().map(|u| u.as_str()).collect();
    let port = route.from.port.map(|p| format!(":{p}")).unwrap_or_default();
    println!(
        "route:    routes[{}] {}://{}{port} -> {}",
        route.index,
        route.from.scheme,
        route.from.host,
        to.join(", ")
    );

    let mut claims = match &who.claims {
        Some(text) => {
            match serde_json::from_str::<serde_json::Value>(text).context("--claims must be a JSON object")? {
                serde_json::Value::Object(map) => map,
                _ => bail!("--claims must be a JSON object"),
            }
        }
        None => serde_json::Map::new(),
    };
    let groups: Vec<String> = match &who.groups {
        Some(g) => g.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect(),
        None => claims
            .get("groups")
            .and_then(|g| g.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default(),
    };
    if let Some(email) = &who.email {
        claims.insert("email".into(), email.clone().into());
    }
    if !claims.contains_key("groups") && who.groups.is_some() {
        claims.insert("groups".into(), groups.clone().into());
    }
    let user_id = who.user.clone().or_else(|| who.email.clone());
    let user = user_id.as_deref().map(|id| UserFacts {
        user_id: id,
        email: who.email.as_deref(),
        claims: &claims,
        groups: &groups,
    });
    let client_ip = match &who.ip {
        Some(ip) => Some(ip.parse().with_context(|| format!("--ip `{ip}` is not an IP address"))?),
        None => None,
    };
    let method = method.to_ascii_uppercase();
    let request = RequestFacts {
        method: &method,
        path: &path,
        client_ip,
        now_unix: now_unix(),
        cors_preflight: false,
        client_certificate: None,
    };
    let (decision, reasons) = match route.policy.decide(&Input { user, request }) {
        Decision::Allow { reasons } => ("allow (forwarded to the upstream)", reasons),
        Decision::Deny { reasons } => ("deny (403)", reasons),
        Decision::Login { reasons } => ("sign in first (302 for browsers, 401 for API clients)", reasons),
    };
    println!("user:     {}", user_id.as_deref().unwrap_or("(anonymous)"));
    println!("decision: {decision}");
    println!("reasons:  {}", reasons.to_strings().join(", "));
    Ok(())
}
