using System.Diagnostics;
using System.Globalization;
using System.Text;
using Orchestrator.Domain;
using Orchestrator.Domain.Networks;

namespace Orchestrator.Hypervisor.Networking;

/// <summary>What a host does for its guests' NICs: taps on per-network bridges, DHCP, port security.</summary>
public interface IHostNetworking
{
    /// <summary>
    /// Makes the VM's taps (and their networks' bridges and DHCP servers) exist, before QEMU opens them. Idempotent: a
    /// tap already there (an adopted VM, a retried start) is kept.
    /// </summary>
    Task PlugAsync(VmId vm, IReadOnlyList<NicAssignment> nics, CancellationToken cancellationToken);

    /// <summary>Removes the VM's taps and their rules; a network left with no tap on this host goes too.</summary>
    Task UnplugAsync(VmId vm, CancellationToken cancellationToken);

    /// <summary>This host's address for the networks' VXLAN; null: its networks stay on this host.</summary>
    string? Underlay => null;

    /// <summary>
    /// Shapes the VMs' NICs as <paramref name="bandwidth"/> says (whole: a VM not listed is not shaped): kept for taps
    /// plugged later, applied at once to those already here.
    /// </summary>
    Task SetBandwidthAsync(HostBandwidth bandwidth, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// The hosts each network's frames go to, whole (a network not listed has none): kept for networks plugged later,
    /// and programmed at once into the VXLAN forwarding of those already here.
    /// </summary>
    Task SetPeersAsync(IReadOnlyList<VxlanPeers> peers, CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>
/// Device names made from ids only (a tenant's names never reach a device, a path or a command line), each within
/// the kernel's 15 characters.
/// </summary>
public static class NetworkDeviceNames
{
    /// <summary>The network's bridge on every host: "obr" and the VNI in hex (at most 9 characters).</summary>
    public static string Bridge(int vni) => "obr" + vni.ToString("x", CultureInfo.InvariantCulture);

    /// <summary>The VM's tap for its NIC <paramref name="index"/>: "otp", 10 hex digits of the VM's id, the index (14).</summary>
    public static string Tap(VmId vm, int index) => TapPrefix(vm) + index.ToString(CultureInfo.InvariantCulture);

    public static string TapPrefix(VmId vm) => "otp" + vm.Compact[..10];

    /// <summary>
    /// The network router's namespace (its DHCP server and gateway address). Namespace names are one list for the whole
    /// machine (/run/netns), also for hosts that are network namespaces of one machine: <paramref name="scope"/> keeps
    /// each host's apart.
    /// </summary>
    public static string Namespace(int vni, string scope) => $"orchnet-{scope}-{vni.ToString("x", CultureInfo.InvariantCulture)}";

    /// <summary>The network's VXLAN device on every host: "ovx" and the VNI in hex (at most 9 characters).</summary>
    public static string Vxlan(int vni) => "ovx" + vni.ToString("x", CultureInfo.InvariantCulture);

    /// <summary>A gateway router's link to the host: its host end ("oup…") and its namespace end ("our…").</summary>
    public static (string Host, string Router) Uplink(int vni) =>
        ("oup" + vni.ToString("x", CultureInfo.InvariantCulture), "our" + vni.ToString("x", CultureInfo.InvariantCulture));

    /// <summary>The router's veth: its bridge end ("ovh…") and its namespace end ("ovn…").</summary>
    public static (string Bridge, string Router) RouterLink(int vni) =>
        ("ovh" + vni.ToString("x", CultureInfo.InvariantCulture), "ovn" + vni.ToString("x", CultureInfo.InvariantCulture));
}

/// <summary>
/// Linux bridges, taps, network namespaces, dnsmasq and nftables, driven through their own commands (ip, nft, dnsmasq).
/// Each network on a host is one bridge with no address of its own: the host is not on its tenants' networks, so a
/// guest cannot reach the node's API or cluster ports. The network's router (.1) lives in a namespace of its own joined
/// to the bridge by a veth; it runs dnsmasq with static entries only (MAC → address), so a DHCP server sees nothing of
/// the host and the host nothing of it. Each tap has an nftables table of its own (bridge family) allowing only the
/// VM's own MAC and address, ARP included, and no DHCP server replies.
/// Across hosts, a network's bridge has a VXLAN port (VNI = the network's, unicast to the peers the scheduler names, no
/// multicast, no learning). Every host's router has the same address: its ARP, its traffic and DHCP never cross the
/// VXLAN port (an nftables table on it, as Neutron's DVR keeps its distributed router local), so each guest is answered
/// by its own host's router and dnsmasq only.
/// </summary>
/// <param name="underlay">this host's address on the network between hosts; null: no VXLAN.</param>
/// <param name="nat">how gateway networks reach the outside (HostNetworking.Nat.cs); null: they do not.</param>
public sealed partial class HostNetworking(string stateDirectory, string? underlay = null, HostNatSettings? nat = null) : IHostNetworking
{
    private readonly HostNatSettings _nat = nat ?? HostNatSettings.Off;

    /// <summary>The guests' and the networks' MTU: the underlay's 1500 less VXLAN's 50 bytes, on every host alike.</summary>
    public const int GuestMtu = 1450;

    private const string VxlanPort = "4789";

    private const string AnyMac = "00:00:00:00:00:00";

    private readonly SemaphoreSlim _lock = new(1, 1);

    /// <summary>The peers of each network (by VNI) as the scheduler last said.</summary>
    private Dictionary<int, IReadOnlyList<string>> _peers = [];

    public string? Underlay { get; } = underlay;

    /// <summary>Per network: dnsmasq's pid file, lease file and log.</summary>
    public string StateDirectory { get; } = stateDirectory;

    /// <summary>
    /// Per network: one static-host file per tap. dnsmasq reads these after it dropped to nobody, who may not traverse
    /// the node's data directory (often 0700), so they live under /run (root's, 0755, gone at reboot like dnsmasq),
    /// keyed by the state directory so that two nodes on one machine keep theirs apart.
    /// </summary>
    private readonly string _hostsRoot = Path.Combine("/run/orchestrator/dhcp-hosts", ScopeOf(stateDirectory));

    /// <summary>Where this host keeps its networks' static-host files (one directory per network).</summary>
    public string HostsRoot => _hostsRoot;

    private readonly string _scope = ScopeOf(stateDirectory)[..8];

    private static string ScopeOf(string stateDirectory) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(stateDirectory))))[..16];

    /// <summary>The router namespace of network <paramref name="vni"/> on this host.</summary>
    public string RouterNamespace(int vni) => NetworkDeviceNames.Namespace(vni, _scope);

    /// <summary>Every router namespace of this host that exists now (a node killed with its networks up leaves them).</summary>
    public IReadOnlyList<string> RouterNamespaces() => Directory.Exists("/run/netns")
        ? Directory.GetFiles("/run/netns", NetworkDeviceNames.Namespace(0, _scope)[..^1] + "*").Select(Path.GetFileName).OfType<string>().ToList()
        : [];

    public async Task PlugAsync(VmId vm, IReadOnlyList<NicAssignment> nics, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            foreach (var nic in nics)
            {
                await EnsureNetworkAsync(nic, cancellationToken);
                var tap = NetworkDeviceNames.Tap(vm, nic.Index);
                if (!LinkExists(tap))
                {
                    await RunAsync(cancellationToken, "ip", "tuntap", "add", "dev", tap, "mode", "tap");
                }

                await RunAsync(cancellationToken, "ip", "link", "set", tap, "mtu", MtuText, "master", NetworkDeviceNames.Bridge(nic.Vni));
                await ApplyPortSecurityAsync(tap, nic, cancellationToken);
                // dnsmasq watches the directory (inotify): a new file is a new static entry.
                await File.WriteAllTextAsync(Path.Combine(HostsDirectory(nic.Vni), tap), $"{nic.Mac},{nic.Ip}\n", cancellationToken);
                await RunAsync(cancellationToken, "ip", "link", "set", tap, "up");
                await SetForwardsAsync(tap, nic, cancellationToken);
            }

            if (nics.Any(n => n.Gateway) && _nat.Enabled)
            {
                await WriteHostRulesAsync(cancellationToken);
            }

            await ApplyBandwidthAsync(cancellationToken); // its taps into its classes, where it is shaped
        }
        finally
        {
            _lock.Release();
        }
    }

    public async Task UnplugAsync(VmId vm, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            var natChanged = false;
            foreach (var tap in Links().Where(l => l.StartsWith(NetworkDeviceNames.TapPrefix(vm), StringComparison.Ordinal)))
            {
                var bridge = MasterOf(tap);
                await RunAsync(cancellationToken, "ip", "link", "del", tap);
                await RunWithInputAsync(cancellationToken, DeleteTable(tap), "nft", "-f", "-");
                if (bridge is not null && TryVni(bridge, out var vni))
                {
                    File.Delete(Path.Combine(HostsDirectory(vni), tap));
                    var networkStays = PortsOf(bridge).Any(p => p.StartsWith("otp", StringComparison.Ordinal));
                    natChanged |= await ForgetForwardsAsync(tap, vni, networkStays, cancellationToken);
                    if (!networkStays)
                    {
                        await RemoveNetworkAsync(vni, cancellationToken);
                    }
                }
            }

            if (natChanged)
            {
                await WriteHostRulesAsync(cancellationToken);
            }

            await RemoveBandwidthAsync(vm, cancellationToken);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Removes every network of this host that has no tap left (after a crash, say).</summary>
    public async Task RemoveIdleNetworksAsync(CancellationToken cancellationToken)
    {
        foreach (var bridge in Links().Where(l => l.StartsWith("obr", StringComparison.Ordinal)))
        {
            if (TryVni(bridge, out var vni) && !PortsOf(bridge).Any(p => p.StartsWith("otp", StringComparison.Ordinal)))
            {
                await RemoveNetworkAsync(vni, cancellationToken);
            }
        }

        await WriteHostRulesAsync(cancellationToken);
    }

    private async Task EnsureNetworkAsync(NicAssignment nic, CancellationToken cancellationToken)
    {
        var bridge = NetworkDeviceNames.Bridge(nic.Vni);
        var ns = RouterNamespace(nic.Vni);
        var (hostEnd, routerEnd) = NetworkDeviceNames.RouterLink(nic.Vni);
        if (!LinkExists(bridge))
        {
            await RunAsync(cancellationToken, "ip", "link", "add", bridge, "type", "bridge");
            // No IPv6 link-local address either: the host has no address at all on a tenant's network.
            await File.WriteAllTextAsync($"/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6", "1", cancellationToken);
            await RunAsync(cancellationToken, "ip", "link", "set", bridge, "up");
        }

        if (!File.Exists($"/run/netns/{ns}"))
        {
            await RunAsync(cancellationToken, "ip", "netns", "add", ns);
            // A veth whose namespace was deleted a moment ago outlives it until the kernel's cleanup runs: without its
            // other end in this namespace, dnsmasq would find no interface (and the router no uplink).
            foreach (var stale in new[] { hostEnd, NetworkDeviceNames.Uplink(nic.Vni).Host }.Where(LinkExists))
            {
                await RunAsync(cancellationToken, "ip", "link", "del", stale);
            }
        }

        if (!LinkExists(hostEnd))
        {
            await RunAsync(cancellationToken, "ip", "link", "add", hostEnd, "type", "veth", "peer", "name", routerEnd, "netns", ns);
            await File.WriteAllTextAsync($"/proc/sys/net/ipv6/conf/{hostEnd}/disable_ipv6", "1", cancellationToken);
            await RunAsync(cancellationToken, "ip", "link", "set", hostEnd, "mtu", MtuText, "master", bridge, "up");
            await RunAsync(cancellationToken, "ip", "-n", ns, "addr", "add", $"{nic.RouterAddress()}/{nic.Prefix}", "dev", routerEnd);
            await RunAsync(cancellationToken, "ip", "-n", ns, "link", "set", routerEnd, "mtu", MtuText, "up");
            await RunAsync(cancellationToken, "ip", "-n", ns, "link", "set", "lo", "up");
        }

        if (nic.Gateway && _nat.Enabled)
        {
            await EnsureUplinkAsync(nic, cancellationToken);
        }

        await EnsureVxlanAsync(nic, cancellationToken);
        var directory = NetworkDirectory(nic.Vni);
        Directory.CreateDirectory(directory);
        // dnsmasq drops to nobody after start: it reads the static entries as that user, so every level is 0755.
        const UnixFileMode readable = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead
            | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
        Directory.CreateDirectory(HostsDirectory(nic.Vni), readable);
        for (var level = HostsDirectory(nic.Vni); level.StartsWith("/run/orchestrator", StringComparison.Ordinal); level = Path.GetDirectoryName(level)!)
        {
            File.SetUnixFileMode(level, readable);
        }
        if (DnsmasqPid(nic.Vni) is null)
        {
            var cidr = Ipv4Cidr.TryParse(nic.CidrText(), out var range, out _) ? range : throw new HypervisorException($"bad network {nic.CidrText()}");
            await RunAsync(cancellationToken, "ip", "netns", "exec", ns, "dnsmasq",
                "--conf-file=/dev/null", "--port=0", "--bind-interfaces", $"--interface={routerEnd}", "--except-interface=lo",
                $"--dhcp-range={Ipv4Cidr.Format(cidr.Network)},static,{Ipv4Cidr.Format(cidr.Mask)},1h",
                $"--dhcp-hostsdir={HostsDirectory(nic.Vni)}", $"--dhcp-leasefile={Path.Combine(directory, "leases")}",
                $"--pid-file={Path.Combine(directory, "dnsmasq.pid")}", "--dhcp-authoritative",
                // Its own log beside its state: a guest that got no address is diagnosed from here.
                $"--log-facility={Path.Combine(directory, "dnsmasq.log")}",
                // Option 3 with no value: no router is advertised on a network without a gateway.
                nic.Gateway ? $"--dhcp-option=3,{nic.RouterAddress()}" : "--dhcp-option=3", "--dhcp-option=6",
                $"--dhcp-option=26,{MtuText}");
        }
    }

    /// <summary>Deletes a bridge table of ours; declared first, so that one never made (a failed plug) is no error.</summary>
    private static string DeleteTable(string name, string family = "bridge") => $"table {family} {name} {{}}\ndelete table {family} {name}\n";

    private static string MtuText => GuestMtu.ToString(CultureInfo.InvariantCulture);

    /// <summary>The network's VXLAN port on its bridge, with the rules that keep the router local, and its peers.</summary>
    private async Task EnsureVxlanAsync(NicAssignment nic, CancellationToken cancellationToken)
    {
        var vxlan = NetworkDeviceNames.Vxlan(nic.Vni);
        if (Underlay is null || LinkExists(vxlan))
        {
            return;
        }

        await RunAsync(cancellationToken, "ip", "link", "add", vxlan, "type", "vxlan", "id", nic.Vni.ToString(CultureInfo.InvariantCulture),
            "local", Underlay, "dstport", VxlanPort, "nolearning");
        await File.WriteAllTextAsync($"/proc/sys/net/ipv6/conf/{vxlan}/disable_ipv6", "1", cancellationToken);
        await RunWithInputAsync(cancellationToken, RouterStaysLocalRules(vxlan, nic.RouterAddress()), "nft", "-f", "-");
        await RunAsync(cancellationToken, "ip", "link", "set", vxlan, "mtu", MtuText, "master", NetworkDeviceNames.Bridge(nic.Vni), "up");
        await SyncPeersAsync(nic.Vni, cancellationToken);
    }

    public async Task SetPeersAsync(IReadOnlyList<VxlanPeers> peers, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            _peers = peers.ToDictionary(p => p.Vni, p => p.Underlays);
            foreach (var vxlan in Links().Where(l => l.StartsWith("ovx", StringComparison.Ordinal)))
            {
                if (TryVni(vxlan, out var vni))
                {
                    await SyncPeersAsync(vni, cancellationToken);
                }
            }
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>
    /// One all-zero forwarding entry per peer (head-end replication: broadcasts and unknown unicast go to each), the ones
    /// of hosts no longer peers removed.
    /// </summary>
    private async Task SyncPeersAsync(int vni, CancellationToken cancellationToken)
    {
        var vxlan = NetworkDeviceNames.Vxlan(vni);
        var wanted = (_peers.GetValueOrDefault(vni) ?? []).Where(p => p != Underlay).ToHashSet(StringComparer.Ordinal);
        var present = ParsePeers(await RunWithInputAsync(cancellationToken, null, "bridge", "fdb", "show", "dev", vxlan));
        foreach (var gone in present.Except(wanted))
        {
            await RunAsync(cancellationToken, "bridge", "fdb", "del", AnyMac, "dev", vxlan, "dst", gone);
        }

        foreach (var added in wanted.Except(present))
        {
            await RunAsync(cancellationToken, "bridge", "fdb", "append", AnyMac, "dev", vxlan, "dst", added);
        }
    }

    /// <summary>The peers in <c>bridge fdb show dev ovx…</c>: the destinations of its all-zero entries.</summary>
    public static IReadOnlySet<string> ParsePeers(string fdb) => fdb
        .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
        .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        .Where(words => words.Length > 2 && words[0] == AnyMac)
        .Select(words => words.SkipWhile(w => w != "dst").Skip(1).FirstOrDefault())
        .OfType<string>()
        .ToHashSet(StringComparer.Ordinal);

    /// <summary>
    /// The router's address is the same on every host: nothing to or from it (ARP included), and no DHCP, crosses the
    /// VXLAN port in either direction, so each guest's gateway and DHCP server are its own host's.
    /// </summary>
    public static string RouterStaysLocalRules(string vxlan, string router)
    {
        var localOnly = new StringBuilder()
            .Append(CultureInfo.InvariantCulture, $"    arp saddr ip {router} drop\n")
            .Append(CultureInfo.InvariantCulture, $"    arp daddr ip {router} drop\n")
            .Append(CultureInfo.InvariantCulture, $"    ip saddr {router} drop\n")
            .Append(CultureInfo.InvariantCulture, $"    ip daddr {router} drop\n")
            .Append("    udp dport { 67, 68 } drop\n")
            .ToString();
        return new StringBuilder()
            .Append(DeleteTable(vxlan))
            .Append(CultureInfo.InvariantCulture, $"table bridge {vxlan} {{\n")
            .Append("  chain from_peers {\n")
            .Append("    type filter hook prerouting priority -200; policy accept;\n")
            .Append(CultureInfo.InvariantCulture, $"    iifname != \"{vxlan}\" accept\n")
            .Append(localOnly)
            .Append("  }\n")
            .Append("  chain to_peers {\n")
            .Append("    type filter hook forward priority -200; policy accept;\n")
            .Append(CultureInfo.InvariantCulture, $"    oifname != \"{vxlan}\" accept\n")
            .Append(localOnly)
            .Append("  }\n")
            .Append("}\n")
            .ToString();
    }

    private async Task RemoveNetworkAsync(int vni, CancellationToken cancellationToken)
    {
        if (DnsmasqPid(vni) is { } pid)
        {
            try
            {
                using var dnsmasq = Process.GetProcessById(pid);
                dnsmasq.Kill();
                await dnsmasq.WaitForExitAsync(cancellationToken);
            }
            catch (ArgumentException)
            {
                // already gone
            }
        }

        var vxlan = NetworkDeviceNames.Vxlan(vni);
        if (LinkExists(vxlan))
        {
            await RunAsync(cancellationToken, "ip", "link", "del", vxlan);
        }

        await RunWithInputAsync(cancellationToken, DeleteTable(vxlan), "nft", "-f", "-");
        // The router's veth goes first, both ends at once: deleting the namespace would leave it to the kernel's
        // asynchronous cleanup, and a network made again at once would meet its stale host end.
        await RemoveUplinkAsync(vni, cancellationToken);
        var (hostEnd, _) = NetworkDeviceNames.RouterLink(vni);
        if (LinkExists(hostEnd))
        {
            await RunAsync(cancellationToken, "ip", "link", "del", hostEnd);
        }

        var ns = RouterNamespace(vni);
        if (File.Exists($"/run/netns/{ns}"))
        {
            await RunAsync(cancellationToken, "ip", "netns", "del", ns);
        }

        if (LinkExists(NetworkDeviceNames.Bridge(vni)))
        {
            await RunAsync(cancellationToken, "ip", "link", "del", NetworkDeviceNames.Bridge(vni));
        }

        foreach (var directory in new[] { NetworkDirectory(vni), HostsDirectory(vni) })
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }

        // This host's directory under /run goes with its last network: /run outlives the node's data directory.
        try
        {
            if (Directory.Exists(_hostsRoot) && !Directory.EnumerateFileSystemEntries(_hostsRoot).Any())
            {
                Directory.Delete(_hostsRoot);
            }
        }
        catch (IOException)
        {
            // A network was made meanwhile: the directory stays with it.
        }
    }

    /// <summary>
    /// Port security (as Neutron's): what enters the bridge from the tap must come from the NIC's MAC and address, ARP
    /// included; a DHCP request from 0.0.0.0 is the one exception; a guest's DHCP server replies (udp sport 67) and
    /// everything but IPv4 and ARP (IPv6 neighbour discovery included) are dropped. One table per tap, replaced whole.
    /// </summary>
    private static Task ApplyPortSecurityAsync(string tap, NicAssignment nic, CancellationToken cancellationToken) =>
        RunWithInputAsync(cancellationToken, PortSecurityRules(tap, nic), "nft", "-f", "-");

    public static string PortSecurityRules(string tap, NicAssignment nic) => new StringBuilder()
        .Append(DeleteTable(tap))
        .Append(CultureInfo.InvariantCulture, $"table bridge {tap} {{\n")
        .Append("  chain from_guest {\n")
        .Append("    type filter hook prerouting priority -200; policy accept;\n")
        .Append(CultureInfo.InvariantCulture, $"    iifname != \"{tap}\" accept\n")
        .Append(CultureInfo.InvariantCulture, $"    ether saddr != {nic.Mac} drop\n")
        .Append(CultureInfo.InvariantCulture, $"    arp saddr ether != {nic.Mac} drop\n")
        .Append(CultureInfo.InvariantCulture, $"    arp saddr ip != {nic.Ip} drop\n")
        .Append("    ether type arp accept\n")
        .Append("    ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept\n")
        .Append(CultureInfo.InvariantCulture, $"    ip saddr != {nic.Ip} drop\n")
        .Append("    udp sport 67 drop\n")
        .Append("    ether type ip accept\n")
        .Append("    drop\n")
        .Append("  }\n")
        .Append(ToGuestRules(tap, nic))
        .Append("}\n")
        .ToString();

    /// <summary>
    /// Security groups: what the bridge hands the tap is dropped unless it is ARP, its router's DHCP answer, from another
    /// guest of its network (the router's address is not one: it stands for everything outside), a reply to a
    /// connection the guest opened, or allowed by one of the NIC's rules. Without bridge conntrack (not every kernel has
    /// nf_conntrack_bridge) a reply is recognised statelessly: TCP that is not a bare SYN, and ICMP echo replies and
    /// errors; UDP replies need a rule.
    /// </summary>
    private static string ToGuestRules(string tap, NicAssignment nic)
    {
        var router = nic.RouterAddress();
        var rules = new StringBuilder()
            .Append("  chain to_guest {\n")
            .Append("    type filter hook forward priority -200; policy accept;\n")
            .Append(CultureInfo.InvariantCulture, $"    oifname != \"{tap}\" accept\n")
            .Append("    ether type arp accept\n")
            .Append("    ether type != ip drop\n")
            .Append(CultureInfo.InvariantCulture, $"    ip saddr {router} udp sport 67 udp dport 68 accept\n")
            .Append(CultureInfo.InvariantCulture, $"    ip saddr != {router} ip saddr {nic.CidrText()} accept\n")
            .Append("    tcp flags & (syn | ack) != syn accept\n")
            .Append("    icmp type { echo-reply, destination-unreachable, time-exceeded } accept\n");
        foreach (var rule in nic.Inbound ?? [])
        {
            var ports = rule.PortFrom == rule.PortTo
                ? rule.PortFrom.ToString(CultureInfo.InvariantCulture)
                : $"{rule.PortFrom.ToString(CultureInfo.InvariantCulture)}-{rule.PortTo.ToString(CultureInfo.InvariantCulture)}";
            rules.Append(CultureInfo.InvariantCulture, $"    ip saddr {rule.Cidr} ").Append(rule.Protocol switch
            {
                SecurityRule.Tcp => $"tcp dport {ports} accept\n",
                SecurityRule.Udp => $"udp dport {ports} accept\n",
                SecurityRule.Icmp => "ip protocol icmp accept\n",
                _ => "accept\n",
            });
        }

        return rules.Append("    drop\n").Append("  }\n").ToString();
    }

    private string NetworkDirectory(int vni) => Path.Combine(StateDirectory, vni.ToString("x", CultureInfo.InvariantCulture));

    private string HostsDirectory(int vni) => Path.Combine(_hostsRoot, vni.ToString("x", CultureInfo.InvariantCulture));

    private int? DnsmasqPid(int vni)
    {
        var file = Path.Combine(NetworkDirectory(vni), "dnsmasq.pid");
        return File.Exists(file) && int.TryParse(File.ReadAllText(file).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
               && File.Exists($"/proc/{pid}/cmdline") && File.ReadAllText($"/proc/{pid}/cmdline").StartsWith("dnsmasq", StringComparison.Ordinal)
            ? pid
            : null;
    }

    private static bool LinkExists(string name) => Directory.Exists($"/sys/class/net/{name}");

    private static IEnumerable<string> Links() => Directory.EnumerateDirectories("/sys/class/net").Select(Path.GetFileName).OfType<string>().ToList();

    private static IEnumerable<string> PortsOf(string bridge) =>
        Directory.Exists($"/sys/class/net/{bridge}/brif")
            ? Directory.EnumerateFileSystemEntries($"/sys/class/net/{bridge}/brif").Select(Path.GetFileName).OfType<string>().ToList()
            : [];

    private static string? MasterOf(string link) =>
        new FileInfo($"/sys/class/net/{link}/master").LinkTarget is { } target ? Path.GetFileName(target) : null;

    private static bool TryVni(string bridge, out int vni) =>
        int.TryParse(bridge.AsSpan(3), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out vni);

    private static Task RunAsync(CancellationToken cancellationToken, string file, params string[] args) =>
        RunWithInputAsync(cancellationToken, null, file, args);

    /// <returns>what the command wrote to its standard output.</returns>
    private static async Task<string> RunWithInputAsync(CancellationToken cancellationToken, string? stdin, string file, params string[] args)
    {
        var start = new ProcessStartInfo(file, args)
        {
            RedirectStandardInput = stdin is not null,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(start) ?? throw new HypervisorException($"could not run {file}");
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin);
            process.StandardInput.Close();
        }

        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var error = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        if (process.ExitCode != 0)
        {
            throw new HypervisorException($"{file} {string.Join(' ', args)} failed (exit {process.ExitCode}): {(await error).Trim()} {(await output).Trim()}");
        }

        return await output;
    }
}
