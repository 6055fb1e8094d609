# Constructs the importer must refuse, each with a diagnostic naming its line.
iptables -t nat -A POSTROUTING -o wan -j MASQUERADE
iptables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
iptables -A FORWARD -p tcp --dport 22 -m limit --limit 5/s -j ACCEPT
iptables -A FORWARD -m connlimit --connlimit-above 10 -j DROP
iptables -A FORWARD -m conntrack --ctstate SNAT -j ACCEPT
iptables -A FORWARD -m u32 --u32 "0>>22&0x3C@0&0xFF=0x50" -j DROP
iptables -A FORWARD -j NFLOG --nflog-group 1
iptables -N mychain
iptables -A mychain -p udp -j RETURN
iptables -A FORWARD -j mychain
iptables -A FORWARD -p tcp --dport 80 -j ACCEPT
