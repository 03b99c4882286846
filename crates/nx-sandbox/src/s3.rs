//! A real S3 API on 127.0.0.1 for tests and benchmarks: moto's server (`ThreadedMotoServer`,
//! from PyPI's `moto[server]`, which `.ci/run` installs), started in a `python3` child process
//! on a loopback port it takes itself and reports, and killed when dropped. Not an emulator of
//! ours: the archive's S3 code talks to the same implementation boto's users test against.

use std::io::{BufRead, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The access key id moto accepts (any is accepted; this one is conventional).
pub const S3_ACCESS_KEY_ID: &str = "testing";
/// The secret access key that goes with it.
pub const S3_SECRET_ACCESS_KEY: &str = "testing";
/// The region.
pub const S3_REGION: &str = "us-east-1";

/// How long the server may take to start and say its port.
const STARTUP: Duration = Duration::from_secs(60);

/// The child's program: moto's server on port 0 of 127.0.0.1, so that the port is taken by the
/// server itself (a free port picked here and handed to the server could be taken by another
/// process in between: two test runs then shared one server and saw each other's objects); its
/// port on the first line of stdout; then it runs until its stdin closes (or it is killed).
const LAUNCH: &str = "\
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer('127.0.0.1', 0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
";

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
    /// Starts moto's server in `python3` on a port of 127.0.0.1 it takes itself, and waits
    /// until it answers.
    pub fn start() -> Result<S3Server, S3ServerError> {
        const INSTALL: &str = "install it: python3 -m pip install 'moto[server]'";
        let mut child = Command::new("python3")
            .args(["-c", LAUNCH])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| S3ServerError(format!("cannot run python3 ({e}); {INSTALL}")))?;
        // The port line, read on a thread of its own so that a child that never says it
        // cannot hang the caller.
        let stdout = child.stdout.take();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            if let Some(stdout) = stdout {
                let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            }
            let _ = tx.send(line);
        });
        // Killed when dropped, whatever happens next.
        let mut server = S3Server {
            child,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        };
        let line = rx
            .recv_timeout(STARTUP)
            .map_err(|_| S3ServerError(format!("it did not say its port within {STARTUP:?}")))?;
        let port = line.trim().parse::<u16>().map_err(|_| {
            let status = server.child.try_wait().ok().flatten();
            S3ServerError(format!(
                "it did not start ({}); is moto[server] installed? {INSTALL}",
                status.map_or_else(|| "no port said".to_owned(), |s| s.to_string())
            ))
        })?;
        server.addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        server
            .request("GET", "/")
            .map_err(|e| S3ServerError(format!("no answer on {}: {e}", server.addr)))?;
        Ok(server)
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
