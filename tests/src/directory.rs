//! Real directory servers for the group-sync tests: the PyPI `scim2-server` (a full SCIM 2.0
//! server, in memory) and Debian's `slapd` (a private instance on a free port). Both are
//! killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::{TempDir, eventually, free_port};

/// What a test does to a directory, whichever kind it is.
#[allow(async_fn_in_trait)]
pub trait DirectoryServer {
    /// The `directory:` section pointing Portcullis at this server.
    fn config(&self) -> String;
    async fn add_member(&self, group: &str, user: &str);
    async fn remove_member(&self, group: &str, user: &str);
    fn stop(&mut self);
}

/// `scim2-server` with a bearer token.
pub struct ScimServer {
    child: Option<Child>,
    pub url: String,
    pub token: String,
    http: reqwest::Client,
    _dir: TempDir,
}

impl ScimServer {
    pub async fn start() -> ScimServer {
        let dir = TempDir::new("scim");
        let port = free_port();
        let token = format!("scim-token-{port}");
        let log = std::fs::File::create(dir.path().join("scim.log")).expect("scim log");
        let child = Command::new(python_script("scim2-server"))
            .args(["--port", &port.to_string(), "--bearer-token", &token])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start scim2-server (just deps installs it)");
        let server = ScimServer {
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
            token,
            http: reqwest::Client::new(),
            _dir: dir,
        };
        eventually("scim2-server answers", Duration::from_secs(20), || async {
            server.http.get(format!("{}/ServiceProviderConfig", server.url)).send().await.ok()
        })
        .await;
        server
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .header("content-type", "application/scim+json");
        if let Some(b) = body {
            r = r.body(b.to_string());
        }
        let response = r.send().await.expect("scim request");
        assert!(response.status().is_success(), "SCIM {path}: {}", response.status());
        response.json().await.unwrap_or(Value::Null)
    }

    /// Create a user; returns its SCIM id.
    pub async fn user(&self, user_name: &str, email: &str, name: &str) -> String {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": user_name,
            "displayName": name,
            "emails": [{"value": email, "primary": true}],
        });
        self.call(reqwest::Method::POST, "/Users", Some(body)).await["id"]
            .as_str()
            .expect("user id")
            .to_owned()
    }

    /// Create a group with members (SCIM ids); returns its id.
    pub async fn group(&self, name: &str, members: &[&str]) -> String {
        let members: Vec<Value> = members.iter().map(|m| json!({"value": m, "type": "User"})).collect();
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": name,
            "members": members,
        });
        self.call(reqwest::Method::POST, "/Groups", Some(body)).await["id"]
            .as_str()
            .expect("group id")
            .to_owned()
    }

    async fn patch(&self, group: &str, op: Value) {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [op]});
        self.call(reqwest::Method::PATCH, &format!("/Groups/{group}"), Some(body)).await;
    }
}

impl DirectoryServer for ScimServer {
    fn config(&self) -> String {
        format!(
            "directory:\n  provider: scim\n  refresh_interval: 1h\n  refresh_timeout: 10s\n  requests_per_second: 0\n  scim:\n    url: {}\n    bearer_token: {}\n    page_size: 2\n",
            self.url, self.token
        )
    }

    async fn add_member(&self, group: &str, user: &str) {
        self.patch(
            group,
            json!({"op": "add", "path": "members", "value": [{"value": user, "type": "User"}]}),
        )
        .await;
    }

    async fn remove_member(&self, group: &str, user: &str) {
        self.patch(group, json!({"op": "remove", "path": format!("members[value eq \"{user}\"]")})).await;
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ScimServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A private `slapd` holding `dc=example,dc=org`, admin `cn=admin,dc=example,dc=org`.
pub struct Slapd {
    child: Option<Child>,
    pub url: String,
    pub password_file: std::path::PathBuf,
    dir: TempDir,
}

pub const LDAP_ADMIN: &str = "cn=admin,dc=example,dc=org";
const LDAP_PASSWORD: &str = "slapd-test-secret";

impl Slapd {
    /// Start with `ldif` loaded (entries under `dc=example,dc=org`, which exists).
    pub async fn start(ldif: &str) -> Slapd {
        let dir = TempDir::new("slapd");
        let port = free_port();
        let db = dir.path().join("db");
        std::fs::create_dir_all(&db).expect("slapd db dir");
        let conf = dir.path().join("slapd.conf");
        std::fs::write(
            &conf,
            format!(
                "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\ninclude /etc/ldap/schema/inetorgperson.schema\ninclude /etc/ldap/schema/nis.schema\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\npidfile {pid}\ndatabase mdb\nsuffix \"dc=example,dc=org\"\nrootdn \"{LDAP_ADMIN}\"\nrootpw {LDAP_PASSWORD}\ndirectory {db}\nmaxsize 104857600\n",
                pid = dir.path().join("slapd.pid").display(),
                db = db.display()
            ),
        )
        .expect("slapd.conf");
        let log = std::fs::File::create(dir.path().join("slapd.log")).expect("slapd log");
        let url = format!("ldap://127.0.0.1:{port}");
        let child = Command::new("/usr/sbin/slapd")
            .arg("-f")
            .arg(&conf)
            .args(["-h", &format!("{url}/"), "-d", "0"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start slapd (just deps installs it)");
        let password_file = dir.path().join("bind-password");
        std::fs::write(&password_file, format!("{LDAP_PASSWORD}\n")).expect("password file");
        let slapd = Slapd { child: Some(child), url, password_file, dir };
        let base = "dn: dc=example,dc=org\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\ndn: ou=people,dc=example,dc=org\nobjectClass: organizationalUnit\nou: people\n\ndn: ou=groups,dc=example,dc=org\nobjectClass: organizationalUnit\nou: groups\n";
        eventually("slapd accepts the base entries", Duration::from_secs(20), || async {
            slapd.ldap("ldapadd", base).await.then_some(())
        })
        .await;
        assert!(slapd.ldap("ldapadd", ldif).await, "loading the test entries");
        slapd
    }

    /// Run `ldapadd`/`ldapmodify` as the admin with `input`; true on success.
    pub async fn ldap(&self, tool: &str, input: &str) -> bool {
        let input_file = self.dir.path().join("input.ldif");
        std::fs::write(&input_file, input).expect("ldif");
        let out = tokio::process::Command::new(tool)
            .args(["-x", "-H", &self.url, "-D", LDAP_ADMIN, "-w", LDAP_PASSWORD, "-f"])
            .arg(&input_file)
            .output()
            .await
            .expect("run ldap tool (ldap-utils)");
        out.status.success()
    }
}

impl DirectoryServer for Slapd {
    fn config(&self) -> String {
        format!(
            "directory:\n  provider: ldap\n  refresh_interval: 1h\n  refresh_timeout: 10s\n  ldap:\n    url: {}\n    bind_dn: {LDAP_ADMIN}\n    bind_password_file: {}\n    user_base_dn: ou=people,dc=example,dc=org\n    group_base_dn: ou=groups,dc=example,dc=org\n    page_size: 2\n",
            self.url,
            self.password_file.display()
        )
    }

    /// `group` and `user` are DNs.
    async fn add_member(&self, group: &str, user: &str) {
        assert!(
            self.ldap(
                "ldapmodify",
                &format!("dn: {group}\nchangetype: modify\nadd: member\nmember: {user}\n")
            )
            .await
        );
    }

    async fn remove_member(&self, group: &str, user: &str) {
        assert!(
            self.ldap(
                "ldapmodify",
                &format!("dn: {group}\nchangetype: modify\ndelete: member\nmember: {user}\n")
            )
            .await
        );
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A console script installed by pip (`scim2-server`), found next to the running python.
fn python_script(name: &str) -> std::path::PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import sysconfig;print(sysconfig.get_path('scripts'))"])
        .output()
        .expect("python3");
    std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join(name)
}
