# An ip6tables-legacy gateway, dumped with counters; no header-less guessing needed.
ip6tables-legacy -t raw -A PREROUTING -p tcp --dport 21 -j CT --helper ftp
ip6tables-legacy -P FORWARD DROP
ip6tables-legacy -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
ip6tables-legacy -A FORWARD -p icmpv6 --icmpv6-type echo-request -j ACCEPT
ip6tables-legacy -A FORWARD -p icmpv6 --icmpv6-type neighbour-solicitation -j ACCEPT
ip6tables-legacy -A FORWARD -s fd00::/8 -p tcp --syn --dport 21 -j ACCEPT
ip6tables-legacy -A FORWARD -p tcp -j REJECT --reject-with tcp-reset
