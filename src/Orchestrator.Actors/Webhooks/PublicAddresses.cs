using System.Net;
using System.Net.Sockets;

namespace Orchestrator.Actors.Webhooks;

/// <summary>
/// Whether a webhook may be delivered to an address: only to one that is reachable on the public internet, so that a
/// tenant cannot aim the node at its own loopback, the hosts' private network or a cloud metadata service. Follows the
/// IANA special-purpose address registries (IPv4 and IPv6). An IPv6 address that carries an IPv4 address inside it
/// (IPv4-mapped, IPv4-compatible, NAT64 64:ff9b::/96, 6to4 2002::/16) is judged by the IPv4 address it leads to.
/// </summary>
public static class PublicAddresses
{
    public static bool IsPublic(IPAddress address) => address.AddressFamily switch
    {
        AddressFamily.InterNetwork => IsPublicV4(address.GetAddressBytes()),
        AddressFamily.InterNetworkV6 => IsPublicV6(address.GetAddressBytes()),
        _ => false,
    };

    private static bool IsPublicV4(ReadOnlySpan<byte> b) =>
        !(b[0] is 0 or 10 or 127 or >= 224 // "this network", private, loopback, multicast, reserved, broadcast
          || (b[0] == 100 && (b[1] & 0xc0) == 64) // 100.64.0.0/10 shared address space (carrier-grade NAT)
          || (b[0] == 169 && b[1] == 254) // link-local, where cloud metadata services answer
          || (b[0] == 172 && (b[1] & 0xf0) == 16) // 172.16.0.0/12 private
          || (b[0] == 192 && b[1] == 0 && b[2] is 0 or 2) // 192.0.0.0/24 IETF protocol assignments, 192.0.2.0/24 TEST-NET-1
          || (b[0] == 192 && b[1] == 88 && b[2] == 99) // 6to4 relay anycast (deprecated)
          || (b[0] == 192 && b[1] == 168) // private
          || (b[0] == 198 && (b[1] & 0xfe) == 18) // 198.18.0.0/15 benchmarking
          || (b[0] == 198 && b[1] == 51 && b[2] == 100) // TEST-NET-2
          || (b[0] == 203 && b[1] == 0 && b[2] == 113)); // TEST-NET-3

    private static bool IsPublicV6(byte[] b)
    {
        // ::/96 (IPv4-compatible, deprecated, with :: and ::1 in it), ::ffff:0:0/96 (IPv4-mapped) and
        // ::ffff:0:0:0/96 (IPv4-translated): the address leads to the IPv4 one in its last four bytes.
        if (Zero(b, 0, 8) && (Zero(b, 8, 4) || (b[8] == 0 && b[9] == 0 && b[10] == 0xff && b[11] == 0xff)
                              || (b[8] == 0xff && b[9] == 0xff && b[10] == 0 && b[11] == 0)))
        {
            return IsPublicV4(b.AsSpan(12, 4));
        }

        // 64:ff9b::/96, the NAT64 well-known prefix: the translator connects to the embedded IPv4 address.
        if (b[0] == 0 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && Zero(b, 4, 8))
        {
            return IsPublicV4(b.AsSpan(12, 4));
        }

        // 2002::/16, 6to4: the IPv4 address of the relay that gets the packets is in bytes 2-5.
        if (b[0] == 0x20 && b[1] == 0x02)
        {
            return IsPublicV4(b.AsSpan(2, 4));
        }

        // Everything else public is global unicast, 2000::/3; that leaves out ::1, ::, 64:ff9b:1::/48 (local NAT64),
        // 100::/64 (discard), fc00::/7 (unique local), fe80::/10 (link-local), fec0::/10 (site-local), ff00::/8 (multicast).
        if ((b[0] & 0xe0) != 0x20)
        {
            return false;
        }

        return !((b[0] == 0x20 && b[1] == 0x01 && b[2] < 0x02) // 2001::/23 IETF protocol assignments: Teredo 2001::/32,
                                                             // benchmarking 2001:2::/48, ORCHID 2001:10::/28, ORCHIDv2 2001:20::/28 …
                 || (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) // 2001:db8::/32 documentation
                 || (b[0] == 0x3f && b[1] == 0xff && (b[2] & 0xf0) == 0)); // 3fff::/20 documentation
    }

    private static bool Zero(byte[] bytes, int start, int count) => bytes.AsSpan(start, count).IndexOfAnyExcept((byte)0) < 0;
}
