using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Orchestrator.Domain.Networks;

/// <summary>
/// An IPv4 network as a tenant names it ("10.0.0.0/24"). Addresses are uints in host order, so arithmetic reads as
/// arithmetic. The first usable address (.1 in a /24) is the network's router: its gateway and DHCP server.
/// </summary>
public readonly record struct Ipv4Cidr(uint Network, int Prefix)
{
    /// <summary>Longest prefix accepted: a /29 leaves the router and five guests.</summary>
    public const int MaxPrefix = 29;

    /// <summary>Shortest prefix accepted: a /16 is 65 534 addresses, more than one network's guests ever need.</summary>
    public const int MinPrefix = 16;

    public uint Mask => Prefix == 0 ? 0u : uint.MaxValue << (32 - Prefix);

    public uint Broadcast => Network | ~Mask;

    /// <summary>The router's address (gateway and DHCP server): never handed to a guest.</summary>
    public uint Router => Network + 1;

    /// <summary>The first address a guest may get.</summary>
    public uint FirstGuest => Network + 2;

    /// <summary>The last address a guest may get.</summary>
    public uint LastGuest => Broadcast - 1;

    public bool IsGuestAddress(uint address) => address >= FirstGuest && address <= LastGuest;

    public override string ToString() => $"{Format(Network)}/{Prefix.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>Parses "a.b.c.d/n" with no host bits set, the prefix between <see cref="MinPrefix"/> and <see cref="MaxPrefix"/>.</summary>
    public static bool TryParse(string? text, out Ipv4Cidr cidr, out string problem)
    {
        cidr = default;
        var slash = text?.IndexOf('/') ?? -1;
        if (text is null || slash < 0
            || !TryParseAddress(text[..slash], out var network)
            || !int.TryParse(text[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var prefix))
        {
            problem = "must be an IPv4 network such as 10.0.0.0/24";
            return false;
        }

        if (prefix is < MinPrefix or > MaxPrefix)
        {
            problem = $"the prefix must be /{MinPrefix} to /{MaxPrefix}, was /{prefix}";
            return false;
        }

        cidr = new Ipv4Cidr(network, prefix);
        if ((network & ~cidr.Mask) != 0)
        {
            problem = $"has host bits set: the network is {new Ipv4Cidr(network & cidr.Mask, prefix)}";
            return false;
        }

        problem = "";
        return true;
    }

    /// <summary>A dotted quad and nothing else (no shorthand forms such as "10.1").</summary>
    public static bool TryParseAddress(string? text, out uint address)
    {
        address = 0;
        if (text is null || text.Count(c => c == '.') != 3 || !text.All(c => c == '.' || char.IsAsciiDigit(c))
            || !IPAddress.TryParse(text, out var ip) || ip.AddressFamily != AddressFamily.InterNetwork)
        {
            return false;
        }

        var bytes = ip.GetAddressBytes();
        address = ((uint)bytes[0] << 24) | ((uint)bytes[1] << 16) | ((uint)bytes[2] << 8) | bytes[3];
        return true;
    }

    public static string Format(uint address) =>
        string.Create(CultureInfo.InvariantCulture, $"{address >> 24}.{(address >> 16) & 0xff}.{(address >> 8) & 0xff}.{address & 0xff}");
}
