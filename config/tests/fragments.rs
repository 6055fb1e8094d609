//! IP fragment reassembly settings: the kernel's `net.ipv4.ipfrag_*` and
//! `net.netfilter.nf_conntrack_frag6_*` sysctls, in the `conntrack:` section of the YAML and
//! through `import-iptables --sysctl`.

use config::iptables::{import, to_yaml, ImportInput};
use config::{load_str, ConntrackSettings, Diagnostic, Ruleset};

/// The errors of a text that must not load.
fn errors(text: &str) -> Vec<Diagnostic> {
    match load_str(text, "t.yaml") {
        Ok(l) => panic!("expected errors, loaded with warnings {:#?}", l.warnings),
        Err(e) => e,
    }
}

/// The single error of `text`, checked for position, message and hint substrings.
fn expect_one(text: &str, line_col: &str, message: &str, hint: &str) -> Diagnostic {
    let es = errors(text);
    assert_eq!(es.len(), 1, "{es:#?}");
    let e = es.into_iter().next().expect("one error");
    assert!(e.is_error());
    assert_eq!(format!("{}:{}", e.pos.line, e.pos.col), line_col, "{e}");
    assert!(e.message.contains(message), "message of {e}");
    assert!(
        e.hint.as_deref().unwrap_or("").contains(hint),
        "hint of {e}"
    );
    e
}

fn loads(text: &str) -> Ruleset {
    match load_str(text, "t.yaml") {
        Ok(l) => l.ruleset,
        Err(e) => panic!(
            "does not load:\n{}",
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

fn with_sysctl(text: &str) -> Result<Ruleset, Vec<Diagnostic>> {
    import(&ImportInput {
        rules: ("rules", "iptables -P FORWARD DROP\n"),
        sysctl: Some(("sysctl.conf", text)),
        helpers: None,
        ipset: None,
        family: None,
    })
    .map(|i| i.ruleset)
}

/// The imported YAML loads back to the same ruleset.
fn round_trip(r: &Ruleset) -> String {
    let y = to_yaml(r);
    assert_eq!(&loads(&y), r, "{y}");
    y
}

const SEVEN: &str = "\
net.ipv4.ipfrag_high_thresh = 8388608
net.ipv4.ipfrag_low_thresh = 6291456
net.ipv4.ipfrag_time = 2
net.ipv4.ipfrag_max_dist = 0
net.netfilter.nf_conntrack_frag6_high_thresh = 16777216
net.netfilter.nf_conntrack_frag6_low_thresh = 12582912
net.netfilter.nf_conntrack_frag6_timeout = 5
";

// ---------------------------------------------------------------------------------------
// YAML

#[test]
fn yaml_sets_every_fragment_setting() {
    let r = loads(
        "conntrack:\n  ipfrag_high_thresh: 8388608\n  ipfrag_low_thresh: 0\n  ipfrag_time: 2\n  \
         ipfrag_max_dist: 0\n  frag6_high_thresh: 1073741824\n  frag6_low_thresh: 1\n  \
         frag6_timeout: 5\n",
    );
    let c = &r.conntrack;
    assert_eq!(c.ipfrag_high_thresh, 8_388_608);
    assert_eq!(c.ipfrag_low_thresh, 0);
    assert_eq!(c.ipfrag_time, 2);
    assert_eq!(c.ipfrag_max_dist, 0);
    assert_eq!(c.frag6_high_thresh, 1 << 30);
    assert_eq!(c.frag6_low_thresh, 1);
    assert_eq!(c.frag6_timeout, 5);
    assert_eq!(c.udp_timeout_stream, 120);
    // Out to YAML (defaults left out) and back.
    let y = round_trip(&r);
    assert!(y.contains("  frag6_high_thresh: 1073741824\n"), "{y}");
    assert!(!y.contains("udp_timeout"), "{y}");
}

#[test]
fn fragment_defaults_are_not_written() {
    let r = loads("conntrack:\n  ipfrag_time: 30\n  frag6_timeout: 60\n");
    assert!(r.conntrack.is_default());
    let y = round_trip(&r);
    assert!(!y.contains("conntrack"), "{y}");
    let y = serde_yaml::to_string(&r).unwrap();
    assert!(!y.contains("conntrack"), "{y}");
}

#[test]
fn fragment_setting_out_of_range() {
    expect_one(
        "conntrack:\n  ipfrag_time: 2147484\n",
        "2:3",
        "conntrack: ipfrag_time = 2147484 is out of range: allowed 0 to 2147483",
        "the kernel default is 30",
    );
    expect_one(
        "conntrack:\n  udp_timeout: 30\n  ipfrag_max_dist: 2147483648\n",
        "3:3",
        "conntrack: ipfrag_max_dist = 2147483648 is out of range: allowed 0 to 2147483647",
        "the kernel default is 64",
    );
}

#[test]
fn fragment_setting_wrong_type() {
    expect_one(
        "conntrack:\n  frag6_high_thresh: 4M\n",
        "2:22",
        "conntrack.frag6_high_thresh: invalid type: string \"4M\", expected a whole number",
        "write a number from 0 to 1073741824 (kernel default 4194304)",
    );
    expect_one(
        "conntrack:\n  frag6_timeout: -1\n",
        "2:18",
        "conntrack.frag6_timeout",
        "",
    );
}

#[test]
fn low_thresh_above_high_thresh() {
    // Both written: at low_thresh, naming both.
    let e = expect_one(
        "conntrack:\n  ipfrag_high_thresh: 1000000\n  ipfrag_low_thresh: 2000000\n",
        "3:3",
        "conntrack: ipfrag_low_thresh = 2000000 is above ipfrag_high_thresh = 1000000: the kernel \
         requires ipfrag_low_thresh <= ipfrag_high_thresh",
        "lower ipfrag_low_thresh to at most 1000000 or raise ipfrag_high_thresh to at least 2000000",
    );
    assert!(e.hint.unwrap().contains("Linux 4.17"));
    // Only high_thresh written, under the default low_thresh: at high_thresh.
    expect_one(
        "conntrack:\n  udp_timeout: 30\n  frag6_high_thresh: 65536\n",
        "3:3",
        "frag6_low_thresh = 3145728 is above frag6_high_thresh = 65536",
        "lower frag6_low_thresh to at most 65536",
    );
    // Equal is fine, and both pairs are checked.
    loads("conntrack:\n  frag6_high_thresh: 65536\n  frag6_low_thresh: 65536\n");
    let es = errors("conntrack:\n  frag6_low_thresh: 5000000\n  ipfrag_low_thresh: 5000000\n");
    assert_eq!(es.len(), 2, "{es:#?}");
    assert_eq!((es[0].pos.line, es[1].pos.line), (2, 3));
}

#[test]
fn unknown_fragment_keys_suggest() {
    expect_one(
        "conntrack:\n  ipfrag_tme: 2\n",
        "2:3",
        "conntrack: unknown field `ipfrag_tme`",
        "did you mean `ipfrag_time`?",
    );
    expect_one(
        "conntrack:\n  frag6_timout: 2\n",
        "2:3",
        "conntrack: unknown field `frag6_timout`",
        "did you mean `frag6_timeout`?",
    );
    // The host's IPv6 sysctl names conntrack's own.
    expect_one(
        "conntrack:\n  ip6frag_time: 2\n",
        "2:3",
        "unknown field `ip6frag_time`",
        "did you mean `frag6_timeout`?",
    );
    // A setting outside its section, or a section of its own.
    expect_one(
        "ipfrag_time: 2\n",
        "1:1",
        "unknown field `ipfrag_time`",
        "`ipfrag_time` is a conntrack setting: write it under `conntrack:`",
    );
    expect_one(
        "forward:\n  policy: drop\nipv4:\n  ipfrag_time: 2\n",
        "3:1",
        "unknown field `ipv4`",
        "IP fragment reassembly is set in `conntrack:`",
    );
}

// ---------------------------------------------------------------------------------------
// import-iptables --sysctl

#[test]
fn sysctl_file_sets_the_seven() {
    let r = with_sysctl(SEVEN).unwrap();
    let c = &r.conntrack;
    assert_eq!(c.ipfrag_high_thresh, 8_388_608);
    assert_eq!(c.ipfrag_low_thresh, 6_291_456);
    assert_eq!(c.ipfrag_time, 2);
    assert_eq!(c.ipfrag_max_dist, 0);
    assert_eq!(c.frag6_high_thresh, 16_777_216);
    assert_eq!(c.frag6_low_thresh, 12_582_912);
    assert_eq!(c.frag6_timeout, 5);
    let y = round_trip(&r);
    assert!(
        y.contains(
            "conntrack:\n  frag6_high_thresh: 16777216\n  frag6_low_thresh: 12582912\n  \
             frag6_timeout: 5\n  ipfrag_high_thresh: 8388608\n  ipfrag_low_thresh: 6291456\n  \
             ipfrag_time: 2\n  ipfrag_max_dist: 0\n"
        ),
        "{y}"
    );
    // /proc/sys paths and `-` name the same keys; the kernel defaults are not written.
    let r = with_sysctl(
        "/proc/sys/net/ipv4/ipfrag_time = 2\n-net/netfilter/nf_conntrack_frag6_timeout=60\n",
    )
    .unwrap();
    assert_eq!(
        (r.conntrack.ipfrag_time, r.conntrack.frag6_timeout),
        (2, 60)
    );
    let y = round_trip(&r);
    assert!(y.contains("conntrack:\n  ipfrag_time: 2\n"), "{y}");
    assert!(!y.contains("frag6"), "{y}");
}

#[test]
fn sysctl_file_may_raise_low_before_high() {
    // The final values are what count: a file in any order imports (`sysctl -a` lists
    // high_thresh first, a hand-written file may not).
    let r = with_sysctl(
        "net.ipv4.ipfrag_low_thresh = 6291456\nnet.ipv4.ipfrag_high_thresh = 8388608\n",
    )
    .unwrap();
    assert_eq!(r.conntrack.ipfrag_low_thresh, 6_291_456);
    round_trip(&r);
}

#[test]
fn sysctl_fragment_errors() {
    let text = "\
net.ipv4.ipfrag_tme = 2
net.netfilter.nf_conntrack_ipfrag_time = 2
net.ipv6.ip6frag_time = 60
net.ipv4.ipfrag_time = 2147484
net.netfilter.nf_conntrack_frag6_timout = 5
net.netfilter.nf_conntrack_frag6_high_thresh = -1
";
    let e = with_sysctl(text).unwrap_err();
    assert_eq!(e.len(), 6, "{e:#?}");
    assert!(e.iter().all(|d| d.file == "sysctl.conf"));
    let has = |i: usize, line_col: (usize, usize), s: &str| {
        assert_eq!((e[i].pos.line, e[i].pos.col), line_col, "{}", e[i]);
        assert!(e[i].message.contains(s), "{}", e[i]);
    };
    has(
        0,
        (1, 1),
        "unknown IPv4 fragment sysctl `net.ipv4.ipfrag_tme` (did you mean `net.ipv4.ipfrag_time`?)",
    );
    has(
        1,
        (2, 1),
        "unknown conntrack sysctl `net.netfilter.nf_conntrack_ipfrag_time` (did you mean `net.ipv4.ipfrag_time`?)",
    );
    has(
        2,
        (3, 1),
        "did you mean `net.netfilter.nf_conntrack_frag6_timeout`?",
    );
    has(
        3,
        (4, 24),
        "`net.ipv4.ipfrag_time`: ipfrag_time = 2147484 is out of range: allowed 0 to 2147483",
    );
    assert_eq!(e[3].hint.as_deref(), Some("allowed 0 to 2147483"));
    has(
        4,
        (5, 1),
        "did you mean `net.netfilter.nf_conntrack_frag6_timeout`?",
    );
    has(6 - 1, (6, 48), "is not a number");
}

#[test]
fn sysctl_low_thresh_above_high_thresh() {
    let text = "\
net.netfilter.nf_conntrack_frag6_high_thresh = 1000000
net.netfilter.nf_conntrack_udp_timeout = 30
net.netfilter.nf_conntrack_frag6_low_thresh = 2000000
";
    let e = with_sysctl(text).unwrap_err();
    assert_eq!(e.len(), 1, "{e:#?}");
    // At the later line of the two, naming both with their lines.
    assert_eq!((e[0].pos.line, e[0].pos.col), (3, 1), "{}", e[0]);
    assert_eq!(
        e[0].message,
        "`net.netfilter.nf_conntrack_frag6_low_thresh`: net.netfilter.nf_conntrack_frag6_low_thresh \
         = 2000000 (line 3) is above net.netfilter.nf_conntrack_frag6_high_thresh = 1000000 \
         (line 1): the kernel requires low_thresh <= high_thresh"
    );
    assert!(e[0].hint.as_deref().unwrap().contains("Linux 4.17"));
    // A high_thresh alone under the default low_thresh.
    let e = with_sysctl("\n  net.ipv4.ipfrag_high_thresh = 65536\n").unwrap_err();
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!((e[0].pos.line, e[0].pos.col), (2, 3), "{}", e[0]);
    assert!(
        e[0].message
            .contains("net.ipv4.ipfrag_low_thresh = 3145728 (the kernel default) is above"),
        "{}",
        e[0]
    );
    // A threshold that failed its own check is not compared again.
    let e =
        with_sysctl("net.ipv4.ipfrag_high_thresh = lots\nnet.ipv4.ipfrag_low_thresh = 5000000\n")
            .unwrap_err();
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(e[0].message.contains("not a number"), "{}", e[0]);
}

#[test]
fn every_setting_has_a_sysctl_name_that_imports() {
    // Each key's full sysctl name sets it, and only it.
    for key in ConntrackSettings::KEYS {
        let name = ConntrackSettings::sysctl_name(key).unwrap();
        let value = ConntrackSettings::default().get(key).unwrap();
        let r = with_sysctl(&format!("{name} = {value}\n"))
            .unwrap_or_else(|e| panic!("{name}: {e:#?}"));
        assert!(r.conntrack.is_default(), "{name}");
    }
}
