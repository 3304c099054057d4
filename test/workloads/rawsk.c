/*
 * rawsk: netlink, packet, raw and ICMP echo (ping) sockets, and a socket filter.
 *
 *   rawsk [nl] [raw] [ping] [pkt] [ring] [flt]      (no argument: all of them)
 *
 * Sets up, prints READY, and waits for SIGUSR1 (sent after a restore, or
 * straight away as a control). Then it checks that every socket is still as it
 * was set up and still talks, printing "OK what" or "FAIL what: why" per check,
 * then DONE, and exits 0.
 *
 *  nl:   NETLINK_USERSOCK sockets: a server bound to its pid, a client bound to
 *        pid+1000000 and connected to it, a socket bound to multicast group 3 and
 *        a sender to it; messages go from the client to the server and to the group;
 *  raw:  a raw IPv4 UDP socket with IP_HDRINCL bound to 127.0.0.12 sends a
 *        handmade datagram to a UDP socket bound to 127.0.0.10; raw ICMP and
 *        ICMPv6 sockets with their type filters;
 *  ping: ICMP echo sockets (IPv4 and IPv6) ping the loopback, one of them bound
 *        to ident 4242 before the dump;
 *  pkt:  AF_PACKET sockets: SOCK_DGRAM bound to lo (ETH_P_IP) with PACKET_RESERVE,
 *        PACKET_ORIGDEV, a fanout group and a unicast membership; SOCK_RAW with
 *        TPACKET_V2, PACKET_AUXDATA and a promiscuous membership; SOCK_PACKET bound
 *        to "lo"; the DGRAM one sees the traffic of a UDP exchange on lo;
 *  ring: an AF_PACKET socket bound to lo with a TPACKET_V2 RX ring mapped; after
 *        the check sends traffic on lo, a frame of the ring holds a packet;
 *  queued: with nl, a message left queued at the netlink server before READY
 *        (a dump refuses it); the check reads it first;
 *  udpq: a datagram left queued at a bound UDP socket before READY (dropped by a
 *        dump, as CRIU does); the socket still receives afterwards;
 *  flt:  a UDP socket with a classic BPF filter that drops datagrams starting
 *        with 'x': the filter reads back the same and still drops them.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/icmp.h>
#include <linux/icmpv6.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <net/ethernet.h>
extern unsigned int if_nametoindex(const char *ifname);
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }
static int fails;

static void die(const char *what) { printf("BAD %s: %s\n", what, strerror(errno)); fflush(stdout); exit(2); }
static void ok(const char *what) { printf("OK %s\n", what); fflush(stdout); }
static void fail(const char *what, const char *why) { printf("FAIL %s: %s\n", what, why); fflush(stdout); fails++; }
static int want(const char *a) { return strstr(getenv("RAWSK_MODES"), a) != NULL; }

static int geti(int fd, int level, int opt) {
	int v = -1; socklen_t l = sizeof(v);
	if (getsockopt(fd, level, opt, &v, &l)) return -1000 - errno;
	return v;
}
static void expect(int fd, int level, int opt, int v, const char *what) {
	int got = geti(fd, level, opt);
	char why[64];
	if (got == v) { ok(what); return; }
	snprintf(why, sizeof(why), "%d, want %d", got, v);
	fail(what, why);
}

/* A datagram within 2 s, or -1. */
static int recv_wait(int fd, void *buf, size_t len, int flags) {
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 2000) != 1) return -1;
	return recv(fd, buf, len, flags | MSG_DONTWAIT);
}

/* ---- netlink ---- */
static int nl_srv, nl_cli, nl_grp, nl_snd, nl_unbound;
#define NL_GROUP 3

static int nl_sock(void) { int fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_USERSOCK); if (fd < 0) die("netlink socket"); return fd; }
static void nl_bind(int fd, unsigned pid, unsigned groups) {
	struct sockaddr_nl a = { .nl_family = AF_NETLINK, .nl_pid = pid, .nl_groups = groups };
	if (bind(fd, (struct sockaddr *)&a, sizeof(a))) die("netlink bind");
}
static void nl_setup(void) {
	nl_srv = nl_sock(); nl_bind(nl_srv, getpid(), 0);
	nl_cli = nl_sock(); nl_bind(nl_cli, getpid() + 1000000, 0);
	struct sockaddr_nl to = { .nl_family = AF_NETLINK, .nl_pid = getpid() };
	if (connect(nl_cli, (struct sockaddr *)&to, sizeof(to))) die("netlink connect");
	nl_grp = nl_sock(); nl_bind(nl_grp, 0, 1 << (NL_GROUP - 1));
	nl_snd = nl_sock();
	nl_unbound = socket(AF_NETLINK, SOCK_DGRAM, NETLINK_ROUTE);
	int one = 1;
	if (setsockopt(nl_srv, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one))) die("SO_PASSCRED");
	int rcv = 100000;
	if (setsockopt(nl_grp, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv))) die("SO_RCVBUF");
}
static void nl_send(int fd, unsigned to_pid, unsigned to_groups, const char *text);
static void nl_send(int fd, unsigned to_pid, unsigned to_groups, const char *text) {
	char buf[256] = { 0 };
	struct nlmsghdr *h = (void *)buf;
	size_t n = strlen(text) + 1;
	h->nlmsg_len = NLMSG_LENGTH(n); h->nlmsg_type = 0x1234;
	memcpy(NLMSG_DATA(h), text, n);
	struct sockaddr_nl a = { .nl_family = AF_NETLINK, .nl_pid = to_pid, .nl_groups = to_groups };
	/* A multicast send is also a unicast to the port id, 0: USERSOCK has no kernel socket. */
	if (sendto(fd, buf, h->nlmsg_len, 0, to_pid || to_groups ? (struct sockaddr *)&a : NULL, to_pid || to_groups ? sizeof(a) : 0) < 0 &&
	    !(to_groups && errno == ECONNREFUSED))
		printf("BAD netlink send: %s\n", strerror(errno));
}
static void nl_expect(int fd, const char *text, const char *what) {
	char buf[256];
	int n = recv_wait(fd, buf, sizeof(buf), 0);
	if (n < (int)NLMSG_LENGTH(1)) { fail(what, "nothing received"); return; }
	if (strcmp(NLMSG_DATA((struct nlmsghdr *)buf), text)) fail(what, "wrong message"); else ok(what);
}
static void nl_check(void) {
	struct sockaddr_nl a; socklen_t l = sizeof(a);
	if (getsockname(nl_srv, (struct sockaddr *)&a, &l) || a.nl_pid != (unsigned)getpid()) fail("netlink server port id", "changed"); else ok("netlink server port id");
	l = sizeof(a);
	if (getsockname(nl_grp, (struct sockaddr *)&a, &l) || a.nl_groups != 1 << (NL_GROUP - 1)) fail("netlink groups", "changed"); else ok("netlink groups");
	expect(nl_srv, SOL_SOCKET, SO_PASSCRED, 1, "netlink SO_PASSCRED");
	expect(nl_unbound, SOL_SOCKET, SO_PROTOCOL, NETLINK_ROUTE, "unbound netlink protocol");
	if (want("queued")) nl_expect(nl_srv, "queued", "netlink queued message");
	nl_send(nl_cli, 0, 0, "to-server");
	nl_expect(nl_srv, "to-server", "netlink connected client to server");
	nl_send(nl_snd, 0, 1 << (NL_GROUP - 1), "to-group");
	nl_expect(nl_grp, "to-group", "netlink multicast group");
}

/* ---- raw ---- */
static int raw_udp, udp_srv, raw_icmp, raw_icmp6;

static unsigned short csum(const void *p, int n) {
	const unsigned short *w = p; long s = 0;
	for (; n > 1; n -= 2) s += *w++;
	if (n) s += *(const unsigned char *)w;
	s = (s >> 16) + (s & 0xffff); s += s >> 16;
	return (unsigned short)~s;
}
static struct sockaddr_in in4(const char *ip, int port) {
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	inet_pton(AF_INET, ip, &a.sin_addr);
	return a;
}
static void raw_setup(void) {
	raw_udp = socket(AF_INET, SOCK_RAW, IPPROTO_UDP);
	udp_srv = socket(AF_INET, SOCK_DGRAM, 0);
	raw_icmp = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	raw_icmp6 = socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
	if (raw_udp < 0 || udp_srv < 0 || raw_icmp < 0 || raw_icmp6 < 0) die("raw socket");
	struct sockaddr_in s = in4("127.0.0.10", 8081), c = in4("127.0.0.12", 0);
	if (bind(udp_srv, (struct sockaddr *)&s, sizeof(s)) || bind(raw_udp, (struct sockaddr *)&c, sizeof(c))) die("raw bind");
	int one = 1;
	if (setsockopt(raw_udp, IPPROTO_IP, IP_HDRINCL, &one, sizeof(one))) die("IP_HDRINCL");
	struct icmp_filter f = { .data = 1 << ICMP_TIMESTAMP };
	if (setsockopt(raw_icmp, SOL_RAW, ICMP_FILTER, &f, sizeof(f))) die("ICMP_FILTER");
	struct icmp6_filter f6; memset(&f6, 0, sizeof(f6)); f6.data[0] = 1 << 13; f6.data[7] = 0x55;
	if (setsockopt(raw_icmp6, SOL_ICMPV6, ICMPV6_FILTER, &f6, sizeof(f6))) die("ICMPV6_FILTER");
}
static void raw_check(void) {
	expect(raw_udp, IPPROTO_IP, IP_HDRINCL, 1, "raw IP_HDRINCL");
	expect(raw_udp, SOL_SOCKET, SO_PROTOCOL, IPPROTO_UDP, "raw protocol");
	struct sockaddr_in a; socklen_t l = sizeof(a);
	char ip[32];
	if (getsockname(raw_udp, (struct sockaddr *)&a, &l)) fail("raw bound address", strerror(errno));
	else if (strcmp(inet_ntop(AF_INET, &a.sin_addr, ip, sizeof(ip)), "127.0.0.12")) fail("raw bound address", ip);
	else ok("raw bound address");
	struct icmp_filter f; l = sizeof(f);
	if (getsockopt(raw_icmp, SOL_RAW, ICMP_FILTER, &f, &l) || f.data != 1 << ICMP_TIMESTAMP) fail("ICMP_FILTER", "changed"); else ok("ICMP_FILTER");
	struct icmp6_filter f6; l = sizeof(f6);
	if (getsockopt(raw_icmp6, SOL_ICMPV6, ICMPV6_FILTER, &f6, &l) || f6.data[0] != 1 << 13 || f6.data[7] != 0x55) fail("ICMPV6_FILTER", "changed"); else ok("ICMPV6_FILTER");
	/* A handmade UDP datagram through the raw socket reaches the UDP server. */
	char pkt[128] = { 0 }, got[64];
	const char *text = "raw-hello";
	struct iphdr *ih = (void *)pkt; struct udphdr *uh = (void *)(pkt + sizeof(*ih));
	int len = sizeof(*ih) + sizeof(*uh) + strlen(text);
	memcpy(pkt + sizeof(*ih) + sizeof(*uh), text, strlen(text));
	ih->ihl = 5; ih->version = 4; ih->ttl = 64; ih->protocol = IPPROTO_UDP; ih->tot_len = htons(len);
	ih->saddr = inet_addr("127.0.0.12"); ih->daddr = inet_addr("127.0.0.10");
	ih->check = csum(ih, sizeof(*ih));
	uh->source = htons(8080); uh->dest = htons(8081); uh->len = htons(len - sizeof(*ih));
	struct sockaddr_in to = in4("127.0.0.10", 8081);
	if (sendto(raw_udp, pkt, len, 0, (struct sockaddr *)&to, sizeof(to)) != len) { fail("raw send", strerror(errno)); return; }
	int n = recv_wait(udp_srv, got, sizeof(got) - 1, 0);
	if (n < 0) { fail("raw datagram received", "nothing"); return; }
	got[n] = 0;
	if (strcmp(got, text)) fail("raw datagram received", got); else ok("raw datagram received");
}

/* ---- ping ---- */
static int ping4, ping6;
static int ping_once(int fd, int v6, const char *what) {
	char pkt[64] = { 0 }, got[128];
	struct icmphdr *h = (void *)pkt;
	h->type = v6 ? 128 : ICMP_ECHO; h->un.echo.sequence = htons(7);
	struct sockaddr_in a4 = in4("127.0.0.1", 0);
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	if (sendto(fd, pkt, sizeof(pkt), 0, v6 ? (struct sockaddr *)&a6 : (struct sockaddr *)&a4, v6 ? sizeof(a6) : sizeof(a4)) < 0) {
		fail(what, strerror(errno)); return -1;
	}
	int n = recv_wait(fd, got, sizeof(got), 0);
	if (n < 8) { fail(what, "no echo reply"); return -1; }
	if (got[0] != (v6 ? (char)129 : ICMP_ECHOREPLY)) { fail(what, "not an echo reply"); return -1; }
	ok(what);
	return ntohs(((struct icmphdr *)got)->un.echo.id);
}
static void ping_setup(void) {
	ping4 = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
	ping6 = socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6);
	if (ping4 < 0 || ping6 < 0) die("ping socket (net.ipv4.ping_group_range?)");
	struct sockaddr_in a = in4("127.0.0.1", 4242);
	if (bind(ping4, (struct sockaddr *)&a, sizeof(a))) die("ping bind");
	struct timeval tv = { 2, 0 };
	if (setsockopt(ping6, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv))) die("SO_RCVTIMEO");
}
static void ping_check(void) {
	int id = ping_once(ping4, 0, "ping IPv4 echo");
	if (id >= 0) { if (id == 4242) ok("ping IPv4 ident kept"); else fail("ping IPv4 ident kept", "another ident"); }
	ping_once(ping6, 1, "ping IPv6 echo");
	struct timeval tv; socklen_t l = sizeof(tv);
	if (getsockopt(ping6, SOL_SOCKET, SO_RCVTIMEO, &tv, &l) || tv.tv_sec != 2) fail("ping SO_RCVTIMEO", "changed"); else ok("ping SO_RCVTIMEO");
}

/* ---- packet ---- */
static int pk_dgram, pk_raw, pk_spkt, pk_udp_a, pk_udp_b;
struct mreq_max { int ifindex; unsigned short type, alen; unsigned char addr[32]; };

static void pkt_setup(void) {
	int lo = if_nametoindex("lo");
	pk_dgram = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP));
	pk_raw = socket(AF_PACKET, SOCK_RAW, 0);
	pk_spkt = socket(AF_PACKET, SOCK_PACKET, htons(ETH_P_ALL));
	if (pk_dgram < 0 || pk_raw < 0 || pk_spkt < 0) die("packet socket");
	struct sockaddr_ll a = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP), .sll_ifindex = lo };
	if (bind(pk_dgram, (struct sockaddr *)&a, sizeof(a))) die("packet bind");
	struct sockaddr sp = { .sa_family = AF_PACKET };
	strcpy(sp.sa_data, "lo");
	if (bind(pk_spkt, &sp, sizeof(sp))) die("SOCK_PACKET bind");
	int v = 8;
	if (setsockopt(pk_dgram, SOL_PACKET, PACKET_RESERVE, &v, sizeof(v))) die("PACKET_RESERVE");
	v = 1;
	if (setsockopt(pk_dgram, SOL_PACKET, PACKET_ORIGDEV, &v, sizeof(v))) die("PACKET_ORIGDEV");
	v = 77 | PACKET_FANOUT_CPU << 16;
	if (setsockopt(pk_dgram, SOL_PACKET, PACKET_FANOUT, &v, sizeof(v))) die("PACKET_FANOUT");
	struct mreq_max m = { .ifindex = lo, .type = PACKET_MR_UNICAST, .alen = 6 };
	if (setsockopt(pk_dgram, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &m, sizeof(m))) die("PACKET_ADD_MEMBERSHIP");
	v = TPACKET_V2;
	if (setsockopt(pk_raw, SOL_PACKET, PACKET_VERSION, &v, sizeof(v))) die("PACKET_VERSION");
	v = 1;
	if (setsockopt(pk_raw, SOL_PACKET, PACKET_AUXDATA, &v, sizeof(v))) die("PACKET_AUXDATA");
	struct mreq_max p = { .ifindex = lo, .type = PACKET_MR_PROMISC };
	if (setsockopt(pk_raw, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &p, sizeof(p))) die("promisc");
	struct sockaddr_in s = in4("127.0.0.20", 9021);
	pk_udp_a = socket(AF_INET, SOCK_DGRAM, 0);
	pk_udp_b = socket(AF_INET, SOCK_DGRAM, 0);
	if (bind(pk_udp_b, (struct sockaddr *)&s, sizeof(s))) die("udp bind");
}
static void pkt_check(void) {
	struct sockaddr_ll a; socklen_t l = sizeof(a);
	if (getsockname(pk_dgram, (struct sockaddr *)&a, &l) || a.sll_ifindex != (int)if_nametoindex("lo") || a.sll_protocol != htons(ETH_P_IP))
		fail("packet bound to lo", "changed");
	else ok("packet bound to lo");
	expect(pk_dgram, SOL_PACKET, PACKET_RESERVE, 8, "PACKET_RESERVE");
	expect(pk_dgram, SOL_PACKET, PACKET_ORIGDEV, 1, "PACKET_ORIGDEV");
	expect(pk_dgram, SOL_PACKET, PACKET_FANOUT, 77 | PACKET_FANOUT_CPU << 16, "PACKET_FANOUT");
	expect(pk_raw, SOL_PACKET, PACKET_VERSION, TPACKET_V2, "PACKET_VERSION");
	expect(pk_raw, SOL_PACKET, PACKET_AUXDATA, 1, "PACKET_AUXDATA");
	expect(pk_spkt, SOL_SOCKET, SO_TYPE, SOCK_PACKET, "SOCK_PACKET type");
	struct mreq_max p = { .ifindex = if_nametoindex("lo"), .type = PACKET_MR_PROMISC };
	if (setsockopt(pk_raw, SOL_PACKET, PACKET_DROP_MEMBERSHIP, &p, sizeof(p))) fail("promisc membership kept", strerror(errno));
	else ok("promisc membership kept");
	/* Drain what came before, then a UDP datagram on lo shows on the packet socket. */
	char buf[2048];
	while (recv(pk_dgram, buf, sizeof(buf), MSG_DONTWAIT) > 0) {}
	struct sockaddr_in to = in4("127.0.0.20", 9021);
	if (sendto(pk_udp_a, "pkt-hello", 9, 0, (struct sockaddr *)&to, sizeof(to)) != 9) { fail("packet sees traffic", strerror(errno)); return; }
	for (int i = 0; i < 20; i++) {
		int n = recv_wait(pk_dgram, buf, sizeof(buf), 0);
		if (n < 0) break;
		if (n >= 37 && !memcmp(buf + 28, "pkt-hello", 9)) { ok("packet sees traffic"); return; }
	}
	fail("packet sees traffic", "no datagram");
}

/* ---- ring ---- */
static int rg;
static void *ring;
static size_t ring_len;
static void ring_setup(void) {
	rg = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	if (rg < 0) die("ring socket");
	int v = TPACKET_V2;
	if (setsockopt(rg, SOL_PACKET, PACKET_VERSION, &v, sizeof(v))) die("ring version");
	struct tpacket_req r = { .tp_block_size = 4096, .tp_block_nr = 4, .tp_frame_size = 2048, .tp_frame_nr = 8 };
	if (setsockopt(rg, SOL_PACKET, PACKET_RX_RING, &r, sizeof(r))) die("PACKET_RX_RING");
	ring_len = r.tp_block_size * r.tp_block_nr;
	ring = mmap(NULL, ring_len, PROT_READ | PROT_WRITE, MAP_SHARED, rg, 0);
	if (ring == MAP_FAILED) die("ring mmap");
	struct sockaddr_ll a = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = if_nametoindex("lo") };
	if (bind(rg, (struct sockaddr *)&a, sizeof(a))) die("ring bind");
}
static void ring_check(void) {
	/* Hand every frame back to the kernel, make traffic, and wait for a frame to fill. */
	for (size_t off = 0; off < ring_len; off += 2048) ((struct tpacket2_hdr *)((char *)ring + off))->tp_status = TP_STATUS_KERNEL;
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in to = in4("127.0.0.21", 9);
	for (int i = 0; i < 50; i++) {
		sendto(u, "ring", 4, 0, (struct sockaddr *)&to, sizeof(to));
		for (size_t off = 0; off < ring_len; off += 2048)
			if (((volatile struct tpacket2_hdr *)((char *)ring + off))->tp_status & TP_STATUS_USER) { ok("packet ring fills"); close(u); return; }
		usleep(20000);
	}
	close(u);
	fail("packet ring fills", "no frame came");
}

/* ---- filter ---- */
static int flt_srv, flt_cli;
static struct sock_filter prog[] = {
	BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 8), /* the first byte after the UDP header */
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 'x', 0, 1),
	BPF_STMT(BPF_RET | BPF_K, 0),
	BPF_STMT(BPF_RET | BPF_K, 0xffff),
};
static void flt_setup(void) {
	flt_srv = socket(AF_INET, SOCK_DGRAM, 0);
	flt_cli = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in s = in4("127.0.0.30", 9030);
	if (bind(flt_srv, (struct sockaddr *)&s, sizeof(s)) || connect(flt_cli, (struct sockaddr *)&s, sizeof(s))) die("filter sockets");
	struct sock_fprog fp = { .len = 4, .filter = prog };
	if (setsockopt(flt_srv, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof(fp))) die("SO_ATTACH_FILTER");
}
static void flt_check(void) {
	struct sock_filter got[8]; socklen_t n = 8;
	if (getsockopt(flt_srv, SOL_SOCKET, SO_GET_FILTER, got, &n) || n != 4 || memcmp(got, prog, sizeof(prog))) fail("filter reads back", "changed");
	else ok("filter reads back");
	char buf[16];
	send(flt_cli, "xdrop", 5, 0);
	send(flt_cli, "keep", 4, 0);
	int r = recv_wait(flt_srv, buf, sizeof(buf), 0);
	if (r == 4 && !memcmp(buf, "keep", 4)) ok("filter drops"); else fail("filter drops", "the filtered datagram came");
}

/* ---- UDP queue ---- */
static int uq_srv, uq_cli;
static void udpq_setup(void) {
	uq_srv = socket(AF_INET, SOCK_DGRAM, 0);
	uq_cli = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in s = in4("127.0.0.31", 9031);
	if (bind(uq_srv, (struct sockaddr *)&s, sizeof(s)) || connect(uq_cli, (struct sockaddr *)&s, sizeof(s))) die("udp queue sockets");
	if (send(uq_cli, "queued", 6, 0) != 6) die("udp queue send");
}
static void udpq_check(void) {
	char buf[16];
	send(uq_cli, "after", 5, 0);
	for (int i = 0; i < 2; i++) {
		int n = recv_wait(uq_srv, buf, sizeof(buf), 0);
		if (n == 5 && !memcmp(buf, "after", 5)) { ok("UDP socket receives after its queue"); return; }
	}
	fail("UDP socket receives after its queue", "no datagram");
}

int main(int argc, char **argv) {
	char modes[256] = "";
	for (int i = 1; i < argc; i++) { strcat(modes, argv[i]); strcat(modes, " "); }
	setenv("RAWSK_MODES", argc > 1 ? modes : "nl raw ping pkt ring flt udpq", 1);
	signal(SIGUSR1, on_usr1);
	if (want("nl")) nl_setup();
	if (want("nl") && want("queued")) nl_send(nl_cli, 0, 0, "queued");
	if (want("raw")) raw_setup();
	if (want("ping")) ping_setup();
	if (want("pkt")) pkt_setup();
	if (want("ring")) ring_setup();
	if (want("flt")) flt_setup();
	if (want("udpq")) udpq_setup();
	printf("READY\n");
	fflush(stdout);
	/* Polled: a signal that comes before a restored pause() starts again would be missed. */
	while (!go) usleep(10000);
	if (want("nl")) nl_check();
	if (want("raw")) raw_check();
	if (want("ping")) ping_check();
	if (want("pkt")) pkt_check();
	if (want("ring")) ring_check();
	if (want("flt")) flt_check();
	if (want("udpq")) udpq_check();
	printf("DONE %d\n", fails);
	fflush(stdout);
	return fails ? 1 : 0;
}
