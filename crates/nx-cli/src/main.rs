//! The `nxcloud` command (filled in by the CLI work; see the issue tracker).
#![forbid(unsafe_code)]

fn main() {
    eprintln!("nxcloud: no commands yet");
    std::process::exit(2);
}
