//! Every error a person can hit says where (file:line:col), what is wrong, and how to fix it.

use config::{load_file, load_str, Diagnostic};

/// The errors of a text that must not load.
fn errors(text: &str) -> Vec<Diagnostic> {
    match load_str(text, "t.yaml") {
        Ok(l) => panic!("expected errors, loaded with warnings {:#?}", l.warnings),
        Err(e) => e,
    }
}

/// The single error of `text`, checked for position, message and hint substrings.
fn expect_one(text: &str, line_col: &str, message: &str, hint: Option<&str>) -> Diagnostic {
    let es = errors(text);
    assert_eq!(es.len(), 1, "{es:#?}");
    let e = es.into_iter().next().expect("one error");
    assert!(e.is_error());
    assert_eq!(format!("{}:{}", e.pos.line, e.pos.col), line_col, "{e}");
    assert!(e.message.contains(message), "message of {e}");
    if let Some(h) = hint {
        assert!(e.hint.as_deref().unwrap_or("").contains(h), "hint of {e}");
    }
    e
}

// ---------------------------------------------------------------------------------------
// YAML syntax

#[test]
fn syntax_tab_indentation() {
    expect_one(
        "forward:\n\tpolicy: drop\n",
        "2:1",
        "found character that cannot start any token",
        Some("indent with spaces"),
    );
}

#[test]
fn syntax_unclosed_list() {
    let text = "forward:\n  rules:\n    - action: accept\n      proto: tcp\n      dport: [22, 80\n";
    expect_one(
        text,
        "6:1",
        "did not find expected ',' or ']'",
        Some("not closed"),
    );
}

#[test]
fn syntax_colon_after_value() {
    expect_one(
        "forward:\n  rules:\n    - action: accept: drop\n",
        "3:21",
        "mapping values are not allowed in this context",
        Some("put each key on its own line"),
    );
}

#[test]
fn value_that_swallowed_the_next_line() {
    let text = "forward:\n  rules:\n    - action: accept\n      proto: tcp\n       dport: 22\n";
    expect_one(
        text,
        "4:14",
        "forward.rules[0].proto: unknown protocol `tcp dport`",
        Some("one value spread over two lines"),
    );
}

// ---------------------------------------------------------------------------------------
// Unknown keys and names, with "did you mean"

#[test]
fn unknown_rule_key() {
    let e = expect_one(
        "forward:\n  rules:\n    - {action: accept, dprt: 22}\n",
        "3:24",
        "forward.rules[0]: unknown field `dprt`",
        Some("did you mean `dport`?"),
    );
    // The long list of allowed keys moved to the hint.
    assert!(!e.message.contains("expected"), "{e}");
    assert!(e
        .hint
        .unwrap_or_default()
        .contains("allowed keys: family, in_port"));
}

#[test]
fn unknown_rule_key_block_style() {
    expect_one(
        "forward:\n  rules:\n    - action: accept\n      proto: udp\n      sprt: 53\n",
        "5:7",
        "forward.rules[0]: unknown field `sprt`",
        Some("did you mean `sport`?"),
    );
}

#[test]
fn unknown_key_without_a_near_name() {
    expect_one(
        "forward:\n  rules:\n    - action: accept\n      frobnicate: 1\n",
        "4:7",
        "unknown field `frobnicate`",
        Some("allowed keys: family"),
    );
}

#[test]
fn unknown_top_level_key() {
    expect_one(
        "forwrd:\n  policy: drop\n",
        "1:1",
        "unknown field `forwrd`",
        Some("did you mean `forward`?"),
    );
}

#[test]
fn unknown_conntrack_setting() {
    expect_one(
        "conntrack:\n  tcp_timeout_establised: 300\n",
        "2:3",
        "conntrack: unknown field `tcp_timeout_establised`",
        Some("did you mean `tcp_timeout_established`?"),
    );
}

#[test]
fn unknown_action() {
    expect_one(
        "forward:\n  rules:\n    - action: acept\n",
        "3:15",
        "forward.rules[0].action: unknown variant `acept`",
        Some("did you mean `accept`? allowed values: accept, drop, reject, notrack"),
    );
}

#[test]
fn unknown_policy() {
    expect_one(
        "forward:\n  policy: dorp\n",
        "2:11",
        "forward.policy: unknown variant `dorp`",
        Some("did you mean `drop`?"),
    );
}

#[test]
fn misspelled_state_suggests_the_nearest() {
    expect_one(
        "forward:\n  rules:\n    - action: accept\n      ctstate: [new, establised]\n",
        "4:22",
        "forward.rules[0].ctstate[1]: unknown state `establised` (did you mean `established`?)",
        None,
    );
}

#[test]
fn misspelled_proto() {
    expect_one(
        "forward:\n  rules:\n    - action: accept\n      proto: tpc\n",
        "4:14",
        "forward.rules[0].proto: unknown protocol `tpc` (did you mean `tcp`?)",
        None,
    );
}

#[test]
fn negation_written_iptables_style() {
    expect_one(
        "forward:\n  rules:\n    - action: drop\n      src: '!10.0.0.0/8'\n",
        "4:12",
        "negation is written as a map, e.g. {not: 10.0.0.0/8}",
        None,
    );
}

// ---------------------------------------------------------------------------------------
// Bad values

#[test]
fn bad_cidr_points_at_the_list_element() {
    expect_one(
        "forward:\n  rules:\n    - action: accept\n      src: [10.0.0.0/8, 10.0.0.300]\n",
        "4:25",
        "forward.rules[0].src[1]: invalid address `10.0.0.300`",
        None,
    );
    expect_one(
        "forward:\n  rules:\n    - action: accept\n      dst:\n        - 10.0.0.0/8\n        - 10.0.0.0/33\n",
        "6:11",
        "forward.rules[0].dst[1]: prefix length /33 in `10.0.0.0/33` is too long",
        None,
    );
}

#[test]
fn reversed_port_range() {
    expect_one(
        "forward:\n  rules:\n    - action: accept\n      proto: tcp\n      dport: 90-80\n",
        "5:14",
        "port range `90-80` is reversed",
        None,
    )
    .message
    .contains("write 80-90")
    .then_some(())
    .expect("the message says how to write it");
}

#[test]
fn port_out_of_range() {
    expect_one(
        "forward:\n  rules:\n    - action: accept\n      proto: tcp\n      dport: [22, 70000]\n",
        "5:19",
        "forward.rules[0].dport[1]: invalid port 70000: a port is a number from 0 to 65535",
        None,
    );
}

#[test]
fn wrong_type_says_what_to_write() {
    expect_one(
        "conntrack:\n  udp_timeout: abc\n",
        "2:16",
        "conntrack.udp_timeout: invalid type: string \"abc\", expected a whole number",
        Some("write a number from 1 to 31536000 (kernel default 30)"),
    );
    expect_one(
        "forward:\n  rules: {action: accept}\n",
        "2:10",
        "forward.rules: invalid type: map, expected a list",
        Some("start each rule with `- `"),
    );
}

#[test]
fn conntrack_setting_out_of_range() {
    expect_one(
        "conntrack:\n  max: 0\n",
        "2:3",
        "conntrack: max = 0 is out of range: allowed 1 to",
        Some("the kernel default is 262144"),
    );
}

#[test]
fn missing_action() {
    expect_one(
        "forward:\n  rules:\n    - {proto: tcp}\n",
        "3:7",
        "forward.rules[0]: missing field `action`",
        Some("every rule needs an action"),
    );
}

// ---------------------------------------------------------------------------------------
// Cross-field checks

#[test]
fn notrack_in_forward() {
    expect_one(
        "forward:\n  rules:\n    - proto: udp\n      action: notrack\n",
        "4:7",
        "action `notrack` is not allowed in the `forward` stage (allowed: accept, drop, reject, log, continue, return, jump, goto, mark, connmark, save_mark, restore_mark)",
        Some("notrack belongs in the `raw` stage"),
    );
}

#[test]
fn drop_in_raw() {
    expect_one(
        "raw:\n  rules:\n    - {proto: udp, action: drop}\n",
        "3:20",
        "action `drop` is not allowed in the `raw` stage",
        Some("filter in the `forward` stage"),
    );
}

#[test]
fn ctstate_in_raw() {
    expect_one(
        "raw:\n  rules:\n    - action: notrack\n      ctstate: new\n",
        "4:7",
        "`ctstate` cannot be matched in the `raw` stage",
        Some("move the rule to the `forward` stage"),
    );
}

#[test]
fn dport_without_proto() {
    expect_one(
        "forward:\n  rules:\n    - action: accept\n      dport: 22\n",
        "4:7",
        "`dport` needs a protocol with ports",
        Some("add `proto: tcp`"),
    );
}

#[test]
fn mixed_families_point_at_the_odd_one() {
    expect_one(
        "forward:\n  rules:\n    - action: accept\n      src: [10.0.0.0/8, fd00::/8]\n",
        "4:25",
        "`src` mixes IPv4 and IPv6 networks",
        Some("split the rule"),
    );
    expect_one(
        "forward:\n  rules:\n    - action: accept\n      proto: icmpv6\n      dst: 10.0.0.0/8\n",
        "4:7",
        "`proto` is for the other IP family than `dst`",
        Some("keep one family per rule"),
    );
}

#[test]
fn unknown_port_name_in_in_port() {
    expect_one(
        "forward:\n  rules:\n    - action: accept\n      in_port: lann\n",
        "4:7",
        "unknown port `lann` (did you mean `lan`?)",
        Some("declared ports: lan, wan"),
    );
    // In a list (or a negated list), the element itself.
    expect_one(
        "forward:\n  rules:\n    - action: accept\n      in_port: [lan, wna]\n",
        "4:22",
        "unknown port `wna` (did you mean `wan`?)",
        None,
    );
    expect_one(
        "forward:\n  rules:\n    - action: accept\n      out_port: {not: [lan, wna]}\n",
        "4:29",
        "unknown port `wna`",
        None,
    );
}

#[test]
fn bad_pairs() {
    let ports = "ports:\n  lan: veth-lan\n  wan: veth-wan\n  dmz: veth-dmz\n";
    expect_one(
        &format!("{ports}pairs: [[lan, wan], [dmz, dzm]]\n"),
        "5:27",
        "pair names unknown port `dzm` (did you mean `dmz`?)",
        Some("declared ports: dmz, lan, wan"),
    );
    expect_one(
        &format!("{ports}pairs: [[lan, wan], [wan, dmz]]\n"),
        "5:22",
        "port `wan` is in more than one pair",
        Some("exactly one peer"),
    );
    expect_one(
        &format!("{ports}pairs: [[dmz, dmz]]\n"),
        "5:9",
        "port `dmz` is paired with itself",
        None,
    );
    expect_one(
        &format!("{ports}pairs: [[lan]]\n"),
        "5:9",
        "pairs[0]: invalid length 1",
        Some("`pairs: [[lan, wan]]`"),
    );
    expect_one(
        ports,
        "1:1",
        "3 ports declared but no `pairs`",
        Some("add e.g. `pairs: [[lan, wan]]`"),
    );
}

// ---------------------------------------------------------------------------------------
// Ports (the hand-written PortSpec deserializer)

#[test]
fn port_spec_unknown_key_names_it_and_the_allowed_ones() {
    expect_one(
        "ports:\n  lan: {interface: eth0, xdp_mod: skb}\n  wan: eth1\n",
        "2:8",
        "ports.lan: unknown field `xdp_mod`",
        Some("did you mean `xdp_mode`? allowed keys: interface, xdp_mode, zero_copy"),
    );
}

#[test]
fn port_spec_bad_values() {
    expect_one(
        "ports:\n  lan: {interface: eth0, xdp_mode: skbb}\n  wan: eth1\n",
        "2:36",
        "ports.lan.xdp_mode: unknown variant `skbb`",
        Some("did you mean `skb`?"),
    );
    expect_one(
        "ports:\n  lan:\n    xdp_mode: skb\n  wan: eth1\n",
        "3:5",
        "ports.lan: missing field `interface`",
        Some("`NAME: {interface: IFACE"),
    );
    expect_one(
        "ports:\n  lan: [eth0]\n  wan: eth1\n",
        "2:8",
        "ports.lan: invalid type: sequence, expected an interface name",
        None,
    );
    expect_one(
        "ports:\n  lan: {interface: eth0, interface: eth1}\n  wan: eth2\n",
        "2:8",
        "ports.lan: duplicate field `interface`",
        None,
    );
    expect_one(
        "ports:\n  lan: this-name-is-far-too-long\n  wan: eth1\n",
        "2:3",
        "invalid interface name `this-name-is-far-too-long` for port `lan`",
        Some("1 to 15 characters"),
    );
}

#[test]
fn port_spec_round_trips() {
    let text = "ports:\n  lan: {interface: eth0, xdp_mode: skb, zero_copy: on}\n  wan: eth1\n";
    let r = load_str(text, "t.yaml")
        .map_err(|e| format!("{e:?}"))
        .expect("loads")
        .ruleset;
    let ports = r.ports.clone().expect("ports");
    assert_eq!(ports["lan"].interface(), "eth0");
    assert_eq!(ports["wan"].interface(), "eth1");
    assert!(matches!(
        ports["wan"],
        config::ruleset::PortSpec::Interface(_)
    ));
    let out = serde_yaml::to_string(&r).expect("serializes");
    assert!(out.contains("wan: eth1"), "{out}");
    assert!(out.contains("xdp_mode: skb"), "{out}");
    let again: config::Ruleset = serde_yaml::from_str(&out).expect("reads its own output");
    assert_eq!(again, r);
}

// ---------------------------------------------------------------------------------------
// Files

#[test]
fn diagnostics_display_file_line_col_and_hint() {
    let es = errors("forward:\n  rules:\n    - {action: accept, dprt: 22}\n");
    assert_eq!(
        es[0].to_string(),
        "t.yaml:3:24: error: forward.rules[0]: unknown field `dprt`\n  hint: did you mean `dport`? allowed keys: family, in_port, out_port, src, dst, proto, sport, dport, ports, icmp_type, icmpv6_type, tcp_flags, syn, ctstate, ctdir, mark, connmark, length, ttl, hop_limit, mac_source, pkttype, rt_type, tcp_mss, match_set, recent, hashlimit, limit, action, reject_with, log, comment"
    );
}

#[test]
fn missing_file() {
    let path = "/nonexistent/statewall-ruleset.yaml";
    let es = load_file(path).map(|_| ()).expect_err("no such file");
    assert_eq!(es.len(), 1);
    assert_eq!(es[0].file, path);
    assert!(es[0].message.contains("cannot read the file"), "{}", es[0]);
    assert!(es[0].hint.is_some());
}

#[test]
fn several_errors_are_all_reported_in_file_order() {
    let text = "forward:\n  rules:\n    - {action: accept, dport: 22}\n    - {action: notrack}\n";
    let es = errors(text);
    let got: Vec<String> = es
        .iter()
        .map(|e| format!("{}:{}", e.pos.line, e.pos.col))
        .collect();
    assert_eq!(got, ["3:24", "4:8"], "{es:#?}");
}

/// Found by the `config` fuzz target: an error at the end of a text whose last line has no
/// newline was reported one line past the end of the file.
#[test]
fn an_error_at_the_end_points_at_the_last_line() {
    let text = "forward:\n  policy: drop\n  r.151.84";
    let e = errors(text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!((e[0].pos.line, e[0].pos.col), (3, 11), "{e:?}");
}

#[test]
fn lone_carriage_returns_break_lines_as_yaml_says() {
    // YAML 1.2 (5.4): a line break is LF, CRLF or a lone CR; positions count them so.
    let e = config::load_str(
        "forward:\r  rules:\r    - {action: reject, reject_with: tcp-reset}\r",
        "cr.yaml",
    )
    .unwrap_err();
    assert_eq!(e[0].pos.line, 3, "{e:?}");
}
