# Marks: mangle PREROUTING restores the connection's mark, marks new connections by
# interface in a user chain and saves the mark; mangle FORWARD marks SSH; filter FORWARD
# decides on packet and connection marks. mangle POSTROUTING and INPUT are left out.
iptables -t mangle -N marking
iptables -t mangle -A PREROUTING -j CONNMARK --restore-mark
iptables -t mangle -A PREROUTING -m mark ! --mark 0x0 -j RETURN
iptables -t mangle -A PREROUTING -j marking
iptables -t mangle -A marking -i lan0 -j MARK --set-mark 0x1
iptables -t mangle -A marking -i wan0 -j MARK --set-mark 0x2/0xf
iptables -t mangle -A marking -j CONNMARK --save-mark --mask 0xff
iptables -t mangle -A FORWARD -p tcp --dport 22 -j MARK --or-mark 0x100
iptables -t mangle -A FORWARD -p udp -j MARK --and-mark 0xffff00ff
iptables -t mangle -A FORWARD -p icmp -j CONNMARK --xor-mark 0x40
iptables -t mangle -A INPUT -j MARK --set-xmark 0x5
iptables -t mangle -A POSTROUTING -o wan0 -j MARK --set-mark 0x9
iptables -P FORWARD DROP
iptables -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
iptables -A FORWARD -m connmark --mark 0x1/0xff -j ACCEPT
iptables -A FORWARD -m mark --mark 0x102/0xfff -m connmark ! --mark 0x1 -j LOG --log-prefix "m2 "
iptables -A FORWARD -m mark --mark 0x102/0xfff -j CONNMARK --set-mark 0x20/0xf0
iptables -A FORWARD -m connmark --mark 0x22/0xff -j ACCEPT
ip6tables -t mangle -A PREROUTING -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff00
ip6tables -t mangle -A PREROUTING -m connmark --mark 0x0 -j CONNMARK --set-xmark 0x7/0xf
ip6tables -A FORWARD -m mark --mark 0x7 -j DROP
