// The bench's sink remote: an XDP program on the remote's uplink end that counts tunnel packets
// by kind and VNI/key and drops them, so that no receive or decapsulation work of a simulated
// remote lands on the sending CPU (veth delivers there).
//
// IPv4 underlays only (the bench's); anything else passes.
//
// Self-contained (no kernel or libbpf headers needed): built by `clang -O2 -g -target bpf` and
// attached with `ip link set dev eth0 xdpdrv obj sink.bpf.o sec xdp.frags`. `xdp.frags`
// because veth refuses a program without frags support when its peer's MTU (9000 in the bench)
// exceeds a page; only the first buffer's headers are read.

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name

#define BPF_MAP_TYPE_HASH 1
#define BPF_NOEXIST 1
#define XDP_DROP 1
#define XDP_PASS 2

#define ETH_P_IP 0x0800
#define IPPROTO_GRE 47
#define IPPROTO_UDP 17
#define GRE_KEY_PRESENT 0x2000
#define GRE_CSUM_PRESENT 0x8000

// Values of `struct sink_key.kind`.
#define KIND_VXLAN 1
#define KIND_GRE 2

struct xdp_md {
    __u32 data;
    __u32 data_end;
    __u32 data_meta;
    __u32 ingress_ifindex;
    __u32 rx_queue_index;
    __u32 egress_ifindex;
};

// VxLAN: port = UDP destination port, id = VNI. GRE (ERSPAN included): port = the GRE protocol
// type (0x88be ERSPAN II, 0x22eb ERSPAN III, 0x6558 Ethernet...), id = the key, 0 without one.
struct sink_key {
    __u8 kind;
    __u8 pad;
    __u16 port;
    __u32 id;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, struct sink_key);
    __type(value, __u64);
} sink_counts SEC(".maps");

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value,
                                   __u64 flags) = (void *)2;

static __u16 be16(const __u8 *p) { return (__u16)(p[0] << 8 | p[1]); }

static void count(struct sink_key *key) {
    __u64 *value = bpf_map_lookup_elem(&sink_counts, key);
    if (value) {
        __sync_fetch_and_add(value, 1);
        return;
    }
    __u64 one = 1;
    // Another CPU may have added the key first: then add to its entry.
    if (bpf_map_update_elem(&sink_counts, key, &one, BPF_NOEXIST) != 0) {
        value = bpf_map_lookup_elem(&sink_counts, key);
        if (value)
            __sync_fetch_and_add(value, 1);
    }
}

SEC("xdp.frags")
int sink(struct xdp_md *ctx) {
    const __u8 *data = (const __u8 *)(long)ctx->data;
    const __u8 *end = (const __u8 *)(long)ctx->data_end;
    const __u8 *ip = data + 14;
    if (ip + 20 > end || be16(data + 12) != ETH_P_IP || (ip[0] >> 4) != 4)
        return XDP_PASS;
    // A later fragment of a copy sent in fragments: the first one was counted.
    if ((be16(ip + 6) & 0x1fff) != 0)
        return XDP_DROP;
    const __u8 *l4 = ip + (ip[0] & 0x0f) * 4;
    struct sink_key key = {};
    if (ip[9] == IPPROTO_UDP) {
        // UDP header, then the VxLAN header: flags (I bit 0x08), 3 reserved, VNI, 1 reserved.
        if (l4 + 16 > end || !(l4[8] & 0x08))
            return XDP_PASS;
        key.kind = KIND_VXLAN;
        key.port = be16(l4 + 2);
        key.id = (__u32)l4[12] << 16 | (__u32)l4[13] << 8 | l4[14];
    } else if (ip[9] == IPPROTO_GRE) {
        if (l4 + 4 > end)
            return XDP_PASS;
        __u16 flags = be16(l4);
        key.kind = KIND_GRE;
        key.port = be16(l4 + 2);
        if (flags & GRE_KEY_PRESENT) {
            // The key follows the checksum word when there is one.
            const __u8 *k = l4 + ((flags & GRE_CSUM_PRESENT) ? 8 : 4);
            if (k + 4 > end)
                return XDP_PASS;
            key.id = (__u32)k[0] << 24 | (__u32)k[1] << 16 | (__u32)k[2] << 8 | k[3];
        }
    } else {
        return XDP_PASS;
    }
    count(&key);
    return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
