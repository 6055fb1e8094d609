# An IPv6 gateway, plus an IPv4 table in the same dump.
iptables -P FORWARD DROP
iptables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
ip6tables -t raw -A PREROUTING -p udp --dport 53 -j CT --notrack
ip6tables -P FORWARD DROP
ip6tables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
ip6tables -A FORWARD -p ipv6-icmp --icmpv6-type echo-request -j ACCEPT
ip6tables -A FORWARD -p icmpv6 -m icmp6 ! --icmpv6-type 1/3 -j ACCEPT
ip6tables -A FORWARD -s fd00:10::/64 -d 2001:db8::1 -p tcp -m multiport --dports 22,80 -m state --state NEW -j ACCEPT
ip6tables -A FORWARD -p tcp --dport 25 -j REJECT --reject-with tcp-reset
ip6tables -A FORWARD -p udp -j REJECT --reject-with icmp6-port-unreachable
ip6tables -A FORWARD -d 2001:db8::/32 -j REJECT --reject-with icmp6-adm-prohibited
ip6tables -A FORWARD -d 2001:db8:1::/48 -j REJECT --reject-with icmp6-no-route
ip6tables -A FORWARD -d 2001:db8:2::/48 -j REJECT --reject-with icmp6-addr-unreachable
ip6tables -A FORWARD -p tcp -m conntrack --ctstate NEW -j ACCEPT
