# Passive FTP through a gateway (S4).
iptables -t raw -A PREROUTING -p tcp --dport 21 -j CT --helper ftp
iptables -P FORWARD DROP
iptables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
iptables -A FORWARD -p tcp --dport 21 -m conntrack --ctstate NEW -j ACCEPT
