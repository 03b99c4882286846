//! A real S3 API on 127.0.0.1 for tests and benchmarks: moto's server (`moto_server`, from
//! PyPI's `moto[server]`, which `.ci/run` installs), started as a child process on a free
//! loopback port and killed when dropped. Not an emulator of ours: the archive's S3 code talks
//! to the same implementation boto's users test against.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key id moto accepts (any is accepted; this one is conventional).
pub const S3_ACCESS_KEY_ID: &str = "testing";
/// The secret access key that goes with it.
pub const S3_SECRET_ACCESS_KEY: &str = "testing";
/// The region.
pub const S3_REGION: &str = "us-east-1";

/// How long the server may take to answer its first request.
const STARTUP: Duration = Duration::from_secs(60);

/// A running moto S3 server. Stops when dropped.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    addr: SocketAddr,
}

/// Why the S3 server could not be started or asked.
#[derive(Debug, thiserror::Error)]
#[error("moto S3 server: {0}")]
pub struct S3ServerError(String);

impl S3Server {
    /// Starts `moto_server` (or `python3 -m moto.server`) on a free port of 127.0.0.1 and
    /// waits until it answers.
    pub fn start() -> Result<S3Server, S3ServerError> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| S3ServerError(format!("finding a free port: {e}")))?
            .port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let args = ["-H", "127.0.0.1", "-p", &port.to_string()].map(str::to_owned);
        let spawn = |program: &str, pre: &[&str]| {
            Command::new(program)
                .args(pre)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        };
        let child = spawn("moto_server", &[])
            .or_else(|_| spawn("python3", &["-m", "moto.server"]))
            .map_err(|e| {
                S3ServerError(format!(
                    "cannot run moto_server or python3 ({e}); install it: python3 -m pip install 'moto[server]'"
                ))
            })?;
        let mut server = S3Server { child, addr };
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(S3ServerError(format!(
                    "it exited at once ({status}); is moto[server] installed? python3 -m pip install 'moto[server]'"
                )));
            }
            if server.request("GET", "/").is_ok() {
                return Ok(server);
            }
            if started.elapsed() > STARTUP {
                return Err(S3ServerError(format!(
                    "no answer on {addr} within {STARTUP:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the server for a test. If it cannot start: under CI (`CI` set to anything but
    /// `false` or empty) that is a failure (panic); elsewhere the test is skipped, saying so on
    /// stderr, and `None` is returned.
    pub fn start_for_test(test: &str) -> Option<S3Server> {
        match Self::start() {
            Ok(server) => Some(server),
            Err(e) if in_ci() => panic!("{test}: {e}"),
            Err(e) => {
                eprintln!("SKIPPED {test}: {e}");
                None
            }
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Creates a bucket (moto takes unsigned requests).
    pub fn create_bucket(&self, name: &str) -> Result<(), S3ServerError> {
        let status = self
            .request("PUT", &format!("/{name}"))
            .map_err(|e| S3ServerError(format!("creating bucket {name}: {e}")))?;
        if status != 200 {
            return Err(S3ServerError(format!(
                "creating bucket {name}: HTTP {status}"
            )));
        }
        Ok(())
    }

    /// The `AWS_*` variables that point an S3 client at this server.
    pub fn env(&self) -> [(&'static str, String); 5] {
        [
            ("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET_ACCESS_KEY.to_owned()),
            ("AWS_REGION", S3_REGION.to_owned()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
    }

    /// One bodiless HTTP/1.1 request; the answer's status.
    fn request(&self, method: &str, path: &str) -> std::io::Result<u16> {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr
        )?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        std::str::from_utf8(&head[9..12])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other("not an HTTP answer"))
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
