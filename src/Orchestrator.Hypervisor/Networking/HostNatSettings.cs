using Orchestrator.Domain.Networks;

namespace Orchestrator.Hypervisor.Networking;

/// <summary>
/// How a host's gateway networks reach the outside: the uplink their traffic leaves by (masqueraded to its address),
/// what guests may never reach beyond the host itself, and the subnet of the routers' links to the host.
/// </summary>
/// <param name="Uplink">the interface out (null: the default route's, looked up when a gateway network is first plugged).</param>
/// <param name="DenyCidrs">what guests' traffic may not go to (null: the underlay's subnet and 169.254.0.0/16). The host's
/// own addresses and the transit subnet are always denied.</param>
/// <param name="TransitCidr">the routers' links to the host: network <c>vni</c> gets the /30 at offset 4·vni.</param>
/// <param name="Enabled">false: no router gets an uplink, nothing leaves any network (and the host's forwarding is left as it is).</param>
public sealed record HostNatSettings(string? Uplink = null, IReadOnlyList<string>? DenyCidrs = null, string TransitCidr = HostNatSettings.DefaultTransit,
    bool Enabled = true)
{
    public const string DefaultTransit = "100.64.0.0/10";

    /// <summary>Link-local: cloud metadata services live there; this product serves nothing on it.</summary>
    public const string LinkLocal = "169.254.0.0/16";

    public static readonly HostNatSettings Default = new();

    /// <summary>No NAT: what a <see cref="HostNetworking"/> made without settings does (tests in the machine's own namespace).</summary>
    public static readonly HostNatSettings Off = new(Enabled: false);

    /// <summary>The host's end and the router's end of network <paramref name="vni"/>'s transit link (a /30).</summary>
    public (string Host, string Router) TransitAddresses(int vni)
    {
        var (network, prefix) = TryParseCidr(TransitCidr) ?? throw new HypervisorException($"bad transit subnet {TransitCidr}");
        var offset = 4L * vni;
        if (offset + 3 >= 1L << (32 - prefix))
        {
            throw new HypervisorException($"network {vni} has no transit link in {TransitCidr}: the subnet holds {(1L << (32 - prefix)) / 4} networks");
        }

        return (Ipv4Cidr.Format(network + (uint)offset + 1), Ipv4Cidr.Format(network + (uint)offset + 2));
    }

    /// <summary>"a.b.c.d/n" (n 0-32), its host bits cleared; null when it is not one.</summary>
    public static (uint Network, int Prefix)? TryParseCidr(string? text)
    {
        var slash = text?.IndexOf('/') ?? -1;
        if (slash < 0 || !Ipv4Cidr.TryParseAddress(text![..slash], out var address)
            || !int.TryParse(text[(slash + 1)..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var prefix)
            || prefix > 32)
        {
            return null;
        }

        var mask = prefix == 0 ? 0u : uint.MaxValue << (32 - prefix);
        return (address & mask, prefix);
    }

    /// <summary>The settings checked: every CIDR one, the transit subnet room for at least one network; else what is wrong.</summary>
    public string? Problem() =>
        (DenyCidrs ?? []).FirstOrDefault(c => TryParseCidr(c) is null) is { } bad ? $"deny-cidrs: '{bad}' is not an IPv4 CIDR"
        : TryParseCidr(TransitCidr) is not { Prefix: <= 28 } ? $"transit-cidr: '{TransitCidr}' is not an IPv4 CIDR of /28 or larger"
        : Uplink is { Length: 0 or > 15 } || (Uplink ?? "").Any(c => char.IsWhiteSpace(c) || c is '/' or '"' or '*') ? $"uplink: '{Uplink}' is not an interface name"
        : null;
}
