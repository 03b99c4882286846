//! `nx-bench`: runs one benchmark item and prints its Markdown section for `BENCHMARKS.md`.
//!
//! ```text
//! nx-bench sign     [--runs N] [--iters N]
//! nx-bench async    [--runs N] [--requests N] [--concurrency 1,64]
//! nx-bench blocking [--runs N] [--requests N] [--concurrency 1,64]
//! nx-bench download [--runs N] [--sizes 16M,256M,1G] [--timed 256M] [--dir DIR]
//! nx-bench upload   [--runs N] [--size 100M] [--dir DIR]
//! nx-bench sandbox  [--runs N] [--requests N] [--concurrency 64]
//! nx-bench archive  [--small 1000] [--small-size 4K] [--large 10] [--large-size 100M]
//!                   [--concurrency 4] [--s3 true|false] [--nxcloud PATH] [--dir DIR]
//! nx-bench peers-async    [--runs N] [--requests N] [--concurrency 1,64]
//! nx-bench peers-blocking [--runs N] [--requests N] [--concurrency 1,64]
//! nx-bench peers-download [--runs N] [--size 256M] [--dir DIR]
//! ```
//!
//! Internal: `nx-bench serve [--workers N]` (the loopback server) and `nx-bench child ...` (one
//! transfer in its own process).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use nx_bench::archive::ArchiveParams;
use nx_bench::fixtures::parse_size;
use nx_bench::peers::PeersDownloadParams;
use nx_bench::requests::RequestParams;
use nx_bench::sandbox::SandboxParams;
use nx_bench::sign::SignParams;
use nx_bench::transfer::{DownloadParams, UploadParams};

const USAGE: &str =
    "usage: nx-bench <sign|async|blocking|download|upload|sandbox|archive|peers-async|peers-blocking|peers-download> [--runs N] [options]
  sign      [--iters N]
  async     [--requests N] [--concurrency 1,64] [--only sdk|raw|hand|hand-timeout|none (profiling)]
  blocking  [--requests N] [--concurrency 1,64] [--only sdk|raw|hand|none (profiling)]
  download  [--sizes 16M,256M,1G] [--timed 256M] [--dir DIR]
  upload    [--size 100M] [--dir DIR]
  sandbox   [--requests N] [--concurrency 64]
  archive   [--small 1000] [--small-size 4K] [--large 10] [--large-size 100M] [--concurrency 4]
            [--s3 true|false] [--nxcloud PATH (default: beside nx-bench)] [--dir DIR]
  peers-async     [--requests N] [--concurrency 1,64] [--only sdk|reqwest|none (profiling)]
  peers-blocking  [--requests N] [--concurrency 1,64]
                  [--only sdk|ureq-hand|ureq-timeout|none (profiling)]
  peers-download  [--size 256M] [--dir DIR]";

fn options(args: &[String]) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    let mut it = args.iter();
    while let Some(key) = it.next() {
        let name = key
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument `{key}`\n{USAGE}"))?;
        let value = it
            .next()
            .ok_or_else(|| format!("`{key}` needs a value\n{USAGE}"))?;
        out.insert(name.to_owned(), value.clone());
    }
    Ok(out)
}

struct Options(HashMap<String, String>);

impl Options {
    fn num<T: std::str::FromStr>(&mut self, name: &str, default: T) -> Result<T, String> {
        match self.0.remove(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: `{v}` is not a number")),
        }
    }

    fn size(&mut self, name: &str, default: u64) -> Result<u64, String> {
        self.0.remove(name).map_or(Ok(default), |v| parse_size(&v))
    }

    fn list(&mut self, name: &str, default: Vec<u64>) -> Result<Vec<u64>, String> {
        match self.0.remove(name) {
            None => Ok(default),
            Some(v) => v.split(',').map(parse_size).collect(),
        }
    }

    fn dir(&mut self, default: PathBuf) -> PathBuf {
        self.0.remove("dir").map_or(default, PathBuf::from)
    }

    fn done(self) -> Result<(), String> {
        match self.0.keys().next() {
            Some(k) => Err(format!("unknown option --{k}\n{USAGE}")),
            None => Ok(()),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nx-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let Some(item) = args.first() else {
        return Err(USAGE.into());
    };
    if item == "child" {
        let outcome = nx_bench::child::run(&args[1..])?;
        println!("{}", outcome.to_json());
        return Ok(());
    }
    let mut opts = Options(options(&args[1..])?);
    if item == "serve" {
        let workers = opts.num("workers", 1usize)?;
        opts.done()?;
        return nx_bench::server::run_child(workers).map_err(|e| e.to_string());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let command = format!("cargo run --release -p nx-bench -- {}", args.join(" "));
    if item == "archive" {
        let nxcloud = opts.0.remove("nxcloud").map_or_else(
            || exe.with_file_name(format!("nxcloud{}", std::env::consts::EXE_SUFFIX)),
            PathBuf::from,
        );
        let d = ArchiveParams::new(nxcloud);
        let params = ArchiveParams {
            small: opts.num("small", d.small)?,
            small_size: opts.size("small-size", d.small_size)?,
            large: opts.num("large", d.large)?,
            large_size: opts.size("large-size", d.large_size)?,
            concurrency: opts.num("concurrency", d.concurrency)?,
            s3: opts.num("s3", d.s3)?,
            dir: opts.dir(d.dir.clone()),
            nxcloud: d.nxcloud,
        };
        opts.done()?;
        let command = format!(
            "cargo build --release -p nx-cli -p nx-bench && target/release/nx-bench archive {}",
            args[1..].join(" ")
        );
        print!(
            "{}",
            nx_bench::archive::bench(&params, command.trim_end())?.markdown
        );
        return Ok(());
    }
    let section = match item.as_str() {
        "sign" => {
            let d = SignParams::default();
            let params = SignParams {
                runs: opts.num("runs", d.runs)?,
                iters: opts.num("iters", d.iters)?,
                body_len: d.body_len,
            };
            opts.done()?;
            nx_bench::sign::bench(&params, &command)?
        }
        "async" | "blocking" | "peers-async" | "peers-blocking" => {
            let d = RequestParams::default();
            let concurrency = opts
                .list(
                    "concurrency",
                    d.concurrency.iter().map(|&c| c as u64).collect(),
                )?
                .into_iter()
                .map(|c| c.max(1) as usize)
                .collect();
            let params = RequestParams {
                runs: opts.num("runs", d.runs)?,
                requests: opts.num("requests", d.requests)?,
                concurrency,
                server_workers: opts.num("server-workers", d.server_workers)?,
                only: opts.0.remove("only"),
            };
            opts.done()?;
            match item.as_str() {
                "async" => nx_bench::requests::bench_async(&exe, &params, &command)?,
                "blocking" => nx_bench::requests::bench_blocking(&exe, &params, &command)?,
                "peers-async" => nx_bench::peers::bench_async(&exe, &params, &command)?,
                _ => nx_bench::peers::bench_blocking(&exe, &params, &command)?,
            }
        }
        "download" => {
            let d = DownloadParams::default();
            let params = DownloadParams {
                runs: opts.num("runs", d.runs)?,
                sizes: opts.list("sizes", d.sizes)?,
                timed_size: opts.size("timed", d.timed_size)?,
                dir: opts.dir(d.dir),
                server_workers: opts.num("server-workers", d.server_workers)?,
            };
            opts.done()?;
            nx_bench::transfer::bench_download(&exe, &params, &command)?
        }
        "peers-download" => {
            let d = PeersDownloadParams::default();
            let params = PeersDownloadParams {
                runs: opts.num("runs", d.runs)?,
                size: opts.size("size", d.size)?,
                dir: opts.dir(d.dir),
                server_workers: opts.num("server-workers", d.server_workers)?,
            };
            opts.done()?;
            nx_bench::peers::bench_download(&exe, &params, &command)?
        }
        "upload" => {
            let d = UploadParams::default();
            let params = UploadParams {
                runs: opts.num("runs", d.runs)?,
                size: opts.size("size", d.size)?,
                dir: opts.dir(d.dir),
                server_workers: opts.num("server-workers", d.server_workers)?,
            };
            opts.done()?;
            nx_bench::transfer::bench_upload(&exe, &params, &command)?
        }
        "sandbox" => {
            let d = SandboxParams::default();
            let params = SandboxParams {
                runs: opts.num("runs", d.runs)?,
                requests: opts.num("requests", d.requests)?,
                concurrency: opts.num("concurrency", d.concurrency)?,
                body_sizes: d.body_sizes,
                verifier_iters: opts.num("verifier-iters", d.verifier_iters)?,
            };
            opts.done()?;
            nx_bench::sandbox::bench(&params, &command)?
        }
        other => return Err(format!("unknown item `{other}`\n{USAGE}")),
    };
    print!("{}", section.markdown());
    Ok(())
}
