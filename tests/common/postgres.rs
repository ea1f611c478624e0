//! A throwaway PostgreSQL server for the scale-out tests: a fresh cluster (`initdb`) in a temp
//! directory, listening on a free port of 127.0.0.1, stopped and removed on drop. It needs
//! Debian's `postgresql` package (`.ci/run` installs it). As root (CI), the server runs as the
//! `postgres` user, since PostgreSQL refuses to run as root.

// Each test binary uses part of the harness (only the TLS test starts a TLS server).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

/// The folder of `initdb` and `pg_ctl`: Debian keeps them out of PATH.
fn bin_dir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    found.sort();
    found
        .pop()
        .filter(|d| d.join("initdb").exists())
        .expect("PostgreSQL is not installed: `apt-get install -y postgresql` (.ci/run does it)")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program args...`, as the `postgres` user when this is root.
fn as_owner(program: &Path, args: &[&str]) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program).args(args);
        c
    } else {
        let mut c = Command::new(program);
        c.args(args);
        c
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `openssl args...` in `dir` (Debian's `postgresql` depends on `openssl`, through `ssl-cert`).
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate authority `NAME.crt`/`NAME.key` in `dir`.
fn authority(dir: &Path, name: &str) {
    let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "2",
            "-subj",
            &format!("/CN=flowrun test {name}"),
        ],
    );
}

/// The server's certificate (`server.crt`, for the host name `db.flowrun.test` only), signed by
/// `ca.crt`, and a second authority, `other-ca.crt`, that signed nothing of this server.
fn certificates(dir: &Path) {
    authority(dir, "ca");
    authority(dir, "other-ca");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=db.flowrun.test",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:db.flowrun.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    // PostgreSQL refuses a key others can read.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("server.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
}

impl Postgres {
    /// A new cluster, started; its database `flowrun` is empty.
    pub fn start() -> Postgres {
        Postgres::start_with(false)
    }

    /// A new cluster that takes TLS connections only (plain TCP is refused by `pg_hba.conf`),
    /// with the certificates of `certificates`; `file("ca.crt")` is the authority to trust.
    pub fn start_tls() -> Postgres {
        Postgres::start_with(true)
    }

    /// A file of the cluster's folder (its certificates).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start_with(tls: bool) -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::Builder::new().prefix("flowrun-pg").tempdir().unwrap();
        if tls {
            certificates(dir.path());
        }
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let data = dir.path().join("data");
        let data_s = data.display().to_string();
        let out = as_owner(
            &bin.join("initdb"),
            &[
                "-D",
                &data_s,
                "-A",
                "trust",
                "-U",
                "flowrun",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off -c max_connections=100",
            dir.path().display()
        );
        if tls {
            let file = |name: &str| dir.path().join(name).display().to_string();
            options += &format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                file("server.crt"),
                file("server.key")
            );
            // Overwritten in place: the file keeps its owner, the server's user.
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
            )
            .unwrap();
        }
        let log = dir.path().join("server.log").display().to_string();
        let out = as_owner(
            &bin.join("pg_ctl"),
            &[
                "-D", &data_s, "-o", &options, "-l", &log, "-w", "-t", "30", "start",
            ],
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let pg = Postgres { dir, bin, port };
        let out = Command::new(pg.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "flowrun",
                "flowrun",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "createdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg
    }

    /// The journal URL of its `flowrun` database.
    pub fn url(&self) -> String {
        format!("postgres://flowrun@127.0.0.1:{}/flowrun", self.port)
    }

    /// psql on the `flowrun` database: rows unaligned, no headers, stopping at the first error.
    fn psql(&self) -> Command {
        let mut psql = Command::new(self.bin.join("psql"));
        let port = self.port.to_string();
        psql.args(["-h", "127.0.0.1", "-p", &port, "-U", "flowrun", "-d", "flowrun"])
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"]);
        psql
    }

    /// Another session takes `tables` (`runs`, or `steps, cursors`: `ACCESS EXCLUSIVE`) and
    /// keeps them: every read and write of them waits until [`Locked::release`] (or until the guard is dropped: psql's input
    /// closes and its transaction ends).
    pub fn lock(&self, tables: &str) -> Locked {
        use std::io::{BufRead, Write};
        let mut session = self
            .psql()
            .arg("-q")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut sql = session.stdin.take().unwrap();
        writeln!(
            sql,
            "BEGIN; LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE; SELECT 'locked';"
        )
        .unwrap();
        let mut said = std::io::BufReader::new(session.stdout.take().unwrap());
        let mut line = String::new();
        said.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "locked");
        Locked { session, sql }
    }

    /// `sql` run with psql: its output, rows unaligned, no headers.
    pub fn query(&self, sql: &str) -> String {
        let out = self.psql().args(["-c", sql]).output().unwrap();
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// A table held by another session ([`Postgres::lock`]).
pub struct Locked {
    session: std::process::Child,
    sql: std::process::ChildStdin,
}

impl Locked {
    /// Ends the session (its transaction with it): the table is free again.
    pub fn release(self) {
        let Locked { mut session, sql } = self;
        drop(sql);
        let _ = session.wait();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").display().to_string();
        let _ = as_owner(
            &self.bin.join("pg_ctl"),
            &["-D", &data, "-m", "immediate", "stop"],
        )
        .output();
    }
}
