# Every construct the importer supports.
iptables -t raw -A PREROUTING -p udp --dport 53 -j CT --notrack
iptables -t raw -A PREROUTING -s 192.0.2.0/24 -p udp --sport 123 -j NOTRACK
iptables -t raw -A PREROUTING -s 198.51.100.7 -j ACCEPT
iptables -t raw -A PREROUTING -p tcp --dport 2121 -j CT --helper ftp
iptables -P FORWARD DROP
iptables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -m comment --comment "accept established first" -j ACCEPT
iptables -A FORWARD -m state --state INVALID -j DROP
iptables -A FORWARD -m conntrack ! --ctstate NEW,ESTABLISHED,RELATED -j DROP
iptables -A FORWARD -m conntrack --ctstate ESTABLISHED --ctdir REPLY -j ACCEPT
iptables -A FORWARD -m state ! --state INVALID -m conntrack --ctdir ORIGINAL -p udp --dport 5000:5100 -j ACCEPT
iptables -A FORWARD -i lan -o wan -s 10.0.0.0/8 ! -d 10.1.2.3/32 -p tcp --syn -m multiport --dports 22,80,443,8000:8080 -j ACCEPT
iptables -A FORWARD -i wan ! -o wan -p tcp ! --syn -m tcp ! --dport 1024:65535 -j DROP
iptables -A FORWARD -s 10.0.0.0/8,192.168.0.0/16 -d 203.0.113.5 -p tcp -m tcp --sport 1024: --dport :1023 -j ACCEPT
iptables -A FORWARD -p tcp --tcp-flags SYN,RST SYN,RST -j DROP
iptables -A FORWARD -p tcp -m tcp ! --tcp-flags ALL NONE -m multiport ! --sports 0:1023 -j ACCEPT
iptables -A FORWARD -p tcp -m multiport --ports 25,587 -j REJECT --reject-with tcp-reset
iptables -A FORWARD -p icmp --icmp-type echo-request -m comment --comment "ping, with spaces and \"quotes\"" -j ACCEPT
iptables -A FORWARD -p icmp -m icmp ! --icmp-type 3/4 -j ACCEPT
iptables -A FORWARD -p icmp --icmp-type port-unreachable -j ACCEPT
iptables -A FORWARD ! -p udp -d 192.0.2.1 -j REJECT --reject-with icmp-host-unreachable
iptables -A FORWARD -p 47 -j REJECT --reject-with icmp-net-unreachable
iptables -A FORWARD -p udp -j REJECT --reject-with icmp-proto-unreachable
iptables -A FORWARD -p udp -m udp --sport 67:68 --dport 67:68 -j REJECT --reject-with icmp-admin-prohibited
iptables -A FORWARD -p tcp -j REJECT
iptables -A FORWARD -s 172.16.0.0/12 -j REJECT --reject-with icmp-port-unreachable
iptables -A INPUT -p tcp --dport 22 -j ACCEPT
iptables -A OUTPUT -p udp --dport 53 -m comment --comment "dns out" -j ACCEPT
