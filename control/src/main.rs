//! statewallctl: the operator's tool. It talks only to the daemon's control socket; the
//! commands arrive with the control work (DESIGN.md §6).
#![forbid(unsafe_code)]

fn main() {
    eprintln!("statewallctl: the control socket protocol is not implemented yet; see README");
    std::process::exit(2);
}
