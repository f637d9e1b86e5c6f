//! LDAP (OpenLDAP, 389-ds, Active Directory): users and groups by base DN, filter and
//! attributes, read with the Simple Paged Results control (RFC 2696). Membership comes from
//! the groups' member attribute (`member`, `uniqueMember` hold DNs; `memberUid` holds user
//! ids) or from the users' `memberOf`; groups that are members of groups nest.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use portcullis_runtime::config::{LdapMembership, LdapSettings};

use crate::{Builder, Progress, Provider, ProviderError, View};

/// The pseudo-attribute naming an entry's DN as its id.
const DN: &str = "dn";

pub struct Ldap3 {
    settings: LdapSettings,
}

impl Ldap3 {
    /// `directory.requests_per_second` does not apply: one connection reads page after page.
    pub fn new(settings: LdapSettings) -> Ldap3 {
        Ldap3 { settings }
    }

    fn tls_config(&self) -> Result<Option<Arc<rustls::ClientConfig>>, ProviderError> {
        let Some(path) = &self.settings.tls_custom_ca_file else { return Ok(None) };
        let pem = std::fs::read(path)
            .map_err(|e| ProviderError::Invalid(format!("cannot read {}: {e}", path.display())))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| ProviderError::Invalid(format!("{}: {e}", path.display())))?;
            roots.add(cert).map_err(|e| ProviderError::Invalid(format!("{}: {e}", path.display())))?;
        }
        if roots.is_empty() {
            return Err(ProviderError::Invalid(format!("{} holds no certificate", path.display())));
        }
        let config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| ProviderError::Invalid(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        Ok(Some(Arc::new(config)))
    }

    async fn connect(&self) -> Result<Ldap, ProviderError> {
        let s = &self.settings;
        let mut conn = LdapConnSettings::new()
            .set_conn_timeout(Duration::from_secs(10))
            .set_starttls(s.start_tls)
            .set_no_tls_verify(s.tls_skip_verify);
        if let Some(config) = self.tls_config()? {
            conn = conn.set_config(config);
        }
        let (driver, mut ldap) = LdapConnAsync::with_settings(conn, s.url.as_str())
            .await
            .map_err(|e| ProviderError::Unreachable { what: host(s), message: e.to_string() })?;
        ldap3::drive!(driver);
        if let Some(dn) = &s.bind_dn {
            let password = s.bind_password.as_ref().map(|p| p.expose()).unwrap_or_default();
            ldap.simple_bind(dn, password)
                .await
                .and_then(|r| r.success())
                .map_err(|e| ProviderError::Auth(format!("bind as {dn} refused: {}", ldap_error(&e))))?;
        }
        Ok(ldap)
    }

    /// Every entry under `base` matching `filter`, with `attrs`, page by page.
    async fn search(
        &self,
        ldap: &mut Ldap,
        base: &str,
        filter: &str,
        attrs: Vec<String>,
        what: &str,
        progress: &Progress,
    ) -> Result<Vec<SearchEntry>, ProviderError> {
        let adapters: Vec<Box<dyn Adapter<_, _>>> =
            vec![Box::new(EntriesOnly::new()), Box::new(PagedResults::new(self.settings.page_size as i32))];
        let err = |e: ldap3::LdapError| {
            ProviderError::Ldap(format!("searching {what} under {base}: {}", ldap_error(&e)))
        };
        let mut stream =
            ldap.streaming_search_with(adapters, base, Scope::Subtree, filter, attrs).await.map_err(err)?;
        let mut entries = Vec::new();
        while let Some(entry) = stream.next().await.map_err(err)? {
            entries.push(SearchEntry::construct(entry));
            if entries.len().is_multiple_of(1000) {
                progress.read(what, entries.len());
            }
        }
        stream.finish().await.success().map_err(err)?;
        Ok(entries)
    }

    async fn fetch_view(&self, progress: &Progress) -> Result<View, ProviderError> {
        let s = &self.settings;
        let mut ldap = self.connect().await?;
        let user_attrs: Vec<String> = [
            &s.user_id_attribute,
            &s.user_email_attribute,
            &s.user_name_attribute,
            &s.user_member_of_attribute,
        ]
        .into_iter()
        .filter(|a| a.as_str() != DN)
        .cloned()
        .collect();
        let group_attrs: Vec<String> = [
            &s.group_id_attribute,
            &s.group_name_attribute,
            &s.group_email_attribute,
            &s.group_member_attribute,
        ]
        .into_iter()
        .filter(|a| a.as_str() != DN)
        .cloned()
        .collect();
        let users =
            self.search(&mut ldap, &s.user_base_dn, &s.user_filter, user_attrs, "users", progress).await?;
        let groups = self
            .search(&mut ldap, &s.group_base_dn, &s.group_filter, group_attrs, "groups", progress)
            .await?;
        let _ = ldap.unbind().await;
        Ok(build(s, &users, &groups))
    }
}

/// The view from the entries read.
fn build(s: &LdapSettings, users: &[SearchEntry], groups: &[SearchEntry]) -> View {
    let mut b = Builder::default();
    // Normalised DN → id, to resolve member values.
    let mut user_by_dn: HashMap<String, String> = HashMap::new();
    let mut user_ids: HashMap<String, String> = HashMap::new();
    for e in users {
        let Some(id) = first(e, &s.user_id_attribute) else { continue };
        b.user(
            &id,
            first(e, &s.user_email_attribute).as_deref(),
            first(e, &s.user_name_attribute).as_deref(),
        );
        user_by_dn.insert(normalise_dn(&e.dn), id.clone());
        user_ids.insert(id.to_lowercase(), id);
    }
    let mut group_by_dn: HashMap<String, String> = HashMap::new();
    for e in groups {
        let Some(id) = first(e, &s.group_id_attribute) else { continue };
        let name = first(e, &s.group_name_attribute).unwrap_or_else(|| id.clone());
        b.group(&id, name, first(e, &s.group_email_attribute).as_deref());
        group_by_dn.insert(normalise_dn(&e.dn), id);
    }
    match s.membership {
        LdapMembership::Member => {
            for e in groups {
                let Some(gid) = group_by_dn.get(&normalise_dn(&e.dn)) else { continue };
                for value in values(e, &s.group_member_attribute) {
                    let dn = normalise_dn(value);
                    if let Some(uid) = user_by_dn.get(&dn) {
                        b.member(gid, uid);
                    } else if let Some(child) = group_by_dn.get(&dn) {
                        b.subgroup(gid, child);
                    } else if let Some(uid) = user_ids.get(&value.to_lowercase()) {
                        // memberUid (posixGroup) names the user, not the entry.
                        b.member(gid, uid);
                    }
                }
            }
        }
        LdapMembership::MemberOf => {
            for e in users {
                let Some(uid) = user_by_dn.get(&normalise_dn(&e.dn)) else { continue };
                for value in values(e, &s.user_member_of_attribute) {
                    if let Some(gid) = group_by_dn.get(&normalise_dn(value)) {
                        b.member(gid, uid);
                    }
                }
            }
        }
    }
    b.finish()
}

/// Attribute values by case-insensitive name (servers answer in their own case).
fn values<'a>(e: &'a SearchEntry, attr: &str) -> &'a [String] {
    e.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(attr)).map(|(_, v)| v.as_slice()).unwrap_or(&[])
}

fn first(e: &SearchEntry, attr: &str) -> Option<String> {
    if attr == DN {
        return Some(e.dn.clone());
    }
    values(e, attr).first().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// DNs compare case-insensitively and without spaces around separators.
fn normalise_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| rdn.split('=').map(str::trim).collect::<Vec<_>>().join("="))
        .collect::<Vec<_>>()
        .join(",")
        .to_lowercase()
}

fn host(s: &LdapSettings) -> String {
    format!("{}://{}", s.url.scheme(), s.url.host_str().unwrap_or("?"))
}

fn ldap_error(e: &ldap3::LdapError) -> String {
    e.to_string()
}

impl Provider for Ldap3 {
    fn name(&self) -> &'static str {
        "ldap"
    }

    fn fetch<'a>(&'a self, progress: &'a Progress) -> BoxFuture<'a, Result<View, ProviderError>> {
        Box::pin(self.fetch_view(progress))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_normalise() {
        assert_eq!(
            normalise_dn("CN=Admins, OU=Groups ,dc=Example,dc=org"),
            "cn=admins,ou=groups,dc=example,dc=org"
        );
    }
}
