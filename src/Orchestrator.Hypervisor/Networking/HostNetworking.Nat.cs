using System.Globalization;
using System.Text;
using Orchestrator.Domain.Networks;

namespace Orchestrator.Hypervisor.Networking;

/// <summary>
/// NAT out of a gateway network's router, guests kept off the host, and port forwards. A gateway network's router
/// namespace gets a veth to the host ("oup…" here, "our…" there) on a /30 of the transit subnet made from the VNI; the
/// router masquerades what leaves by it, the host masquerades what it sends out of its uplink. On the host one nftables
/// table drops everything guests send to the host itself (input from any "oup…"), and forwards guests' traffic only to
/// the uplink and never to a denied CIDR (the underlay's subnet, link-local, the transit subnet). A port forward is DNAT
/// twice: the host's port to the router's transit address, the router's to the guest; the source stays the client's,
/// so the guest's security groups judge it as any traffic from outside.
/// </summary>
public sealed partial class HostNetworking
{
    private const string RouterTable = "orchrouter";

    /// <summary>Per gateway network (VNI) with an uplink here: each tap's address and forwards.</summary>
    private readonly Dictionary<int, Dictionary<string, (string Ip, IReadOnlyList<NicForward> Forwards)>> _gateways = [];

    private string HostTable => "orchnat_" + _scope;

    private async Task EnsureUplinkAsync(NicAssignment nic, CancellationToken cancellationToken)
    {
        var (hostEnd, routerEnd) = NetworkDeviceNames.Uplink(nic.Vni);
        var ns = RouterNamespace(nic.Vni);
        if (!LinkExists(hostEnd))
        {
            var (hostAddress, routerAddress) = _nat.TransitAddresses(nic.Vni);
            await RunAsync(cancellationToken, "ip", "link", "add", hostEnd, "type", "veth", "peer", "name", routerEnd, "netns", ns);
            await File.WriteAllTextAsync($"/proc/sys/net/ipv6/conf/{hostEnd}/disable_ipv6", "1", cancellationToken);
            await RunAsync(cancellationToken, "ip", "addr", "add", $"{hostAddress}/30", "dev", hostEnd);
            await RunAsync(cancellationToken, "ip", "link", "set", hostEnd, "up");
            await RunAsync(cancellationToken, "ip", "-n", ns, "addr", "add", $"{routerAddress}/30", "dev", routerEnd);
            await RunAsync(cancellationToken, "ip", "-n", ns, "link", "set", routerEnd, "up");
            await RunAsync(cancellationToken, "ip", "-n", ns, "route", "replace", "default", "via", hostAddress);
            // Both ends route: the router between its network and the host, the host between its routers and its uplink.
            await RunWithInputAsync(cancellationToken, "1\n", "ip", "netns", "exec", ns, "tee", "/proc/sys/net/ipv4/ip_forward");
            await File.WriteAllTextAsync("/proc/sys/net/ipv4/ip_forward", "1", cancellationToken);
        }

        _gateways.TryAdd(nic.Vni, []);
    }

    /// <summary>Records the tap's forwards and programs its network's router; the host's table is written by the caller.</summary>
    private async Task SetForwardsAsync(string tap, NicAssignment nic, CancellationToken cancellationToken)
    {
        if (_gateways.TryGetValue(nic.Vni, out var taps))
        {
            taps[tap] = (nic.Ip, nic.Forwards ?? []);
            await WriteRouterRulesAsync(nic.Vni, cancellationToken);
        }
    }

    /// <summary>Forgets the tap's forwards; true when its network had an uplink here (the host's table is to be written again).</summary>
    private async Task<bool> ForgetForwardsAsync(string tap, int vni, bool networkStays, CancellationToken cancellationToken)
    {
        if (!_gateways.TryGetValue(vni, out var taps) || !taps.Remove(tap))
        {
            return false;
        }

        if (networkStays)
        {
            await WriteRouterRulesAsync(vni, cancellationToken);
        }

        return true;
    }

    private async Task RemoveUplinkAsync(int vni, CancellationToken cancellationToken)
    {
        _gateways.Remove(vni);
        var (hostEnd, _) = NetworkDeviceNames.Uplink(vni);
        if (LinkExists(hostEnd))
        {
            await RunAsync(cancellationToken, "ip", "link", "del", hostEnd);
        }
    }

    private Task WriteRouterRulesAsync(int vni, CancellationToken cancellationToken) =>
        RunWithInputAsync(cancellationToken, RouterRules(NetworkDeviceNames.Uplink(vni).Router,
                _gateways[vni].Values.SelectMany(t => t.Forwards.Select(f => (f.Protocol, f.HostPort, t.Ip, f.GuestPort)))),
            "ip", "netns", "exec", RouterNamespace(vni), "nft", "-f", "-");

    /// <summary>The host's table for every gateway network here, or none when there is none.</summary>
    private async Task WriteHostRulesAsync(CancellationToken cancellationToken)
    {
        if (_gateways.Count == 0)
        {
            await RunWithInputAsync(cancellationToken, DeleteTable(HostTable, "ip"), "nft", "-f", "-");
            return;
        }

        var uplink = _nat.Uplink ?? DefaultRouteDevice(await RunWithInputAsync(cancellationToken, null, "ip", "-o", "-4", "route", "show", "default"));
        var deny = _nat.DenyCidrs ?? DefaultDenied(Underlay, await RunWithInputAsync(cancellationToken, null, "ip", "-o", "-4", "addr", "show"));
        var forwards = _gateways.SelectMany(g => g.Value.Values.SelectMany(t => t.Forwards)
            .Select(f => (f.Protocol, f.HostPort, Router: _nat.TransitAddresses(g.Key).Router)));
        await RunWithInputAsync(cancellationToken, HostRules(HostTable, uplink, deny, _nat.TransitCidr, forwards), "nft", "-f", "-");
    }

    /// <summary>The device of the first default route in <c>ip -o -4 route show default</c>; null when there is none.</summary>
    public static string? DefaultRouteDevice(string routes) => routes
        .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
        .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        .Where(words => words is ["default", ..])
        .Select(words => words.SkipWhile(w => w != "dev").Skip(1).FirstOrDefault())
        .FirstOrDefault(device => device is not null);

    /// <summary>
    /// What guests may not reach by default besides the host itself: the subnet of the underlay address (the other hosts'
    /// management and VXLAN), as <c>ip -o -4 addr show</c> lists it, and link-local (metadata services).
    /// </summary>
    public static IReadOnlyList<string> DefaultDenied(string? underlay, string addresses)
    {
        var subnet = underlay is null
            ? null
            : addresses.Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries)
                .Where(word => word.StartsWith(underlay + "/", StringComparison.Ordinal))
                .Select(HostNatSettings.TryParseCidr)
                .FirstOrDefault(cidr => cidr is not null);
        return subnet is { } s
            ? [$"{Domain.Networks.Ipv4Cidr.Format(s.Network)}/{s.Prefix.ToString(CultureInfo.InvariantCulture)}", HostNatSettings.LinkLocal]
            : [HostNatSettings.LinkLocal];
    }

    /// <summary>
    /// The host's table: guests (anything from a router's "oup…" link) reach no address of the host's and nothing but the
    /// uplink, never a denied CIDR; into the routers goes only what a forward sent or what answers a guest; a forwarded host
    /// port goes to its network's router; what the routers send out of the uplink is masqueraded. Replaced whole.
    /// </summary>
    public static string HostRules(string table, string? uplink, IReadOnlyList<string> deny, string transit,
        IEnumerable<(string Protocol, int HostPort, string Router)> forwards)
    {
        var rules = new StringBuilder()
            .Append(DeleteTable(table, "ip"))
            .Append(CultureInfo.InvariantCulture, $"table ip {table} {{\n")
            .Append("  chain guests_to_host {\n")
            .Append("    type filter hook input priority -10; policy accept;\n")
            .Append("    iifname \"oup*\" drop\n")
            .Append("  }\n")
            .Append("  chain guests_through_host {\n")
            .Append("    type filter hook forward priority -10; policy accept;\n")
            .Append(uplink is null ? "    iifname \"oup*\" drop\n" : $"    iifname \"oup*\" oifname != \"{uplink}\" drop\n");
        foreach (var cidr in deny.Append(transit))
        {
            rules.Append(CultureInfo.InvariantCulture, $"    iifname \"oup*\" ip daddr {cidr} drop\n");
        }

        rules.Append("    oifname \"oup*\" ct state established,related accept\n")
            .Append("    oifname \"oup*\" ct status dnat accept\n")
            .Append("    oifname \"oup*\" drop\n")
            .Append("  }\n")
            .Append("  chain forwards_in {\n")
            .Append("    type nat hook prerouting priority dstnat; policy accept;\n");
        foreach (var (protocol, port, router) in forwards)
        {
            rules.Append(CultureInfo.InvariantCulture,
                $"    iifname != \"oup*\" fib daddr type local {protocol} dport {port} dnat to {router}:{port}\n");
        }

        rules.Append("  }\n")
            .Append("  chain guests_out {\n")
            .Append("    type nat hook postrouting priority srcnat; policy accept;\n");
        if (uplink is not null)
        {
            rules.Append(CultureInfo.InvariantCulture, $"    oifname \"{uplink}\" ip saddr {transit} masquerade\n");
        }

        return rules.Append("  }\n").Append("}\n").ToString();
    }

    /// <summary>
    /// A gateway router's table (in its namespace): from the host's link only forwarded ports and answers come in, each
    /// forward to its guest's address and port; what goes out to the host is masqueraded to the router's transit address.
    /// </summary>
    public static string RouterRules(string uplink, IEnumerable<(string Protocol, int HostPort, string GuestIp, int GuestPort)> forwards)
    {
        var rules = new StringBuilder()
            .Append(DeleteTable(RouterTable, "ip"))
            .Append(CultureInfo.InvariantCulture, $"table ip {RouterTable} {{\n")
            .Append("  chain only_forwards_in {\n")
            .Append("    type filter hook forward priority 0; policy accept;\n")
            .Append(CultureInfo.InvariantCulture, $"    iifname \"{uplink}\" ct state established,related accept\n")
            .Append(CultureInfo.InvariantCulture, $"    iifname \"{uplink}\" ct status dnat accept\n")
            .Append(CultureInfo.InvariantCulture, $"    iifname \"{uplink}\" drop\n")
            .Append("  }\n")
            .Append("  chain forwards_in {\n")
            .Append("    type nat hook prerouting priority dstnat; policy accept;\n");
        foreach (var (protocol, port, ip, guestPort) in forwards)
        {
            rules.Append(CultureInfo.InvariantCulture, $"    iifname \"{uplink}\" {protocol} dport {port} dnat to {ip}:{guestPort}\n");
        }

        return rules.Append("  }\n")
            .Append("  chain guests_out {\n")
            .Append("    type nat hook postrouting priority srcnat; policy accept;\n")
            .Append(CultureInfo.InvariantCulture, $"    oifname \"{uplink}\" masquerade\n")
            .Append("  }\n")
            .Append("}\n")
            .ToString();
    }
}
