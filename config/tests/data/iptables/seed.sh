# The seed's host-firewall example (S2): INPUT/OUTPUT rules on a server.
iptables -P INPUT DROP
iptables -P OUTPUT DROP
iptables -A INPUT -d 172.18.151.84 -p tcp -m multiport --dports 22,80 -m state --state NEW,ESTABLISHED -j ACCEPT
iptables -A OUTPUT -s 172.18.151.84 -p tcp -m multiport --sports 22,80 -m state --state ESTABLISHED -j ACCEPT
