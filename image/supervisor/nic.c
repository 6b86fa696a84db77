/*
 * The container's NIC after a template's restore (src/oci/template-nic.ts): the template was saved
 * with one virtio-net NIC never configured; the host encoded this container's rtnetlink requests
 * (its veth's MAC and MTU with the link up, each address, each route — what burrow's boot sends
 * for burrow.net.*) into container.plan with the interface index left out. Here the index is
 * found by the NIC's name and checked against the template's MAC, written into each request, and
 * the requests are sent in order, each one acked before the next.
 */

#define AF_NETLINK_ 16
#define SOCK_RAW_ 3
#define NETLINK_ROUTE_ 0
#define SIOCGIFHWADDR_ 0x8927
#define SIOCGIFINDEX_ 0x8933
#define NLMSG_ERROR_ 2
/* struct nlmsghdr: len u32, type u16, flags u16, seq u32, pid u32. */
#define NLMSGHDR_SIZE 16
#define NIC_MAX_REQUESTS 64
#define NIC_NAME_MAX 16

struct nic_request { const unsigned char *bytes; u32 len, index_offset; };

struct nic_plan {
	const char *name;
	const unsigned char *template_mac;
	int nrequests;
	struct nic_request requests[NIC_MAX_REQUESTS];
};

struct ifreq_k {
	char name[NIC_NAME_MAX];
	union { int index; struct { unsigned short family; unsigned char data[14]; } hwaddr; char pad[24]; } u;
};

static u32 get_u32_le(const unsigned char *p) { return (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24; }

static const char *const request_names[] = { [16] = "RTM_NEWLINK", [20] = "RTM_NEWADDR", [24] = "RTM_NEWROUTE" };

static const char *request_name(const unsigned char *request)
{
	unsigned type = (unsigned)request[4] | (unsigned)request[5] << 8;
	return type < sizeof(request_names) / sizeof(request_names[0]) && request_names[type] ? request_names[type] : "a netlink request";
}

/* A request's checks before it is sent: whole, its length its header's, the index inside it. */
static int nic_request_ok(const struct nic_request *r)
{
	return r->len >= NLMSGHDR_SIZE && get_u32_le(r->bytes) == r->len && r->index_offset >= NLMSGHDR_SIZE && r->index_offset + 4 <= r->len;
}

/* The kernel's answer to request `seq`: 0 acked, -errno refused, 1 not in this reply. */
static int nic_ack(const unsigned char *reply, long len, u32 seq)
{
	for (long off = 0; off + NLMSGHDR_SIZE <= len;) {
		u32 msg_len = get_u32_le(reply + off);
		if (msg_len < NLMSGHDR_SIZE || off + (long)msg_len > len)
			return 1;
		unsigned type = (unsigned)reply[off + 4] | (unsigned)reply[off + 5] << 8;
		if (type == NLMSG_ERROR_ && get_u32_le(reply + off + 8) == seq && msg_len >= NLMSGHDR_SIZE + 4)
			return (int)get_u32_le(reply + off + NLMSGHDR_SIZE);
		off += (msg_len + 3) & ~3u;
	}
	return 1;
}

/* Configure the NIC; 0, or -errno with *what naming the step that failed. */
static int nic_configure(struct nic_plan *nic, const char **what)
{
	static unsigned char reply[8192];
	struct ifreq_k req;
	int fd = k_socket(AF_NETLINK_, SOCK_RAW_ | O_CLOEXEC, NETLINK_ROUTE_);
	if (fd < 0) {
		*what = "opening a NETLINK_ROUTE socket for";
		return fd;
	}
	size_t name_len = str_len(nic->name);
	memset(&req, 0, sizeof(req));
	memcpy(req.name, nic->name, name_len < NIC_NAME_MAX ? name_len : NIC_NAME_MAX - 1);
	int ret = k_ioctl(fd, SIOCGIFHWADDR_, (long)&req);
	if (ret < 0) {
		*what = "reading the MAC address of the template's NIC";
		goto out;
	}
	for (int i = 0; i < 6; i++)
		if (req.u.hwaddr.data[i] != nic->template_mac[i]) {
			*what = "the template's NIC has another MAC address:";
			ret = -ENODEV;
			goto out;
		}
	if ((ret = k_ioctl(fd, SIOCGIFINDEX_, (long)&req)) < 0) {
		*what = "reading the index of the template's NIC";
		goto out;
	}
	u32 index = (u32)req.u.index;
	for (int i = 0; i < nic->nrequests; i++) {
		struct nic_request *r = &nic->requests[i];
		unsigned char *bytes = (unsigned char *)r->bytes;
		for (int b = 0; b < 4; b++)
			bytes[r->index_offset + b] = (unsigned char)(index >> (8 * b));
		u32 seq = get_u32_le(bytes + 8);
		*what = request_name(bytes);
		long n = k_write(fd, bytes, r->len);
		if (n < 0) {
			ret = (int)n;
			goto out;
		}
		/* The kernel answers a request before it takes the next: what comes is its ack or error. */
		for (ret = 1; ret == 1;) {
			n = k_read(fd, reply, sizeof(reply));
			if (n == -EINTR)
				continue;
			if (n <= 0) {
				ret = n < 0 ? (int)n : -EIO;
				break;
			}
			ret = nic_ack(reply, n, seq);
		}
		if (ret < 0)
			goto out;
	}
	ret = 0;
out:
	k_close(fd);
	return ret;
}
