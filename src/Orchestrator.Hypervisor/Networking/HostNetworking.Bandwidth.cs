using System.Globalization;
using System.Text;
using Orchestrator.Domain;
using Orchestrator.Domain.Shares;

namespace Orchestrator.Hypervisor.Networking;

/// <summary>
/// The bandwidth of each shaped VM's NICs on this host (issue 19, part 6), and the host's capacity it was divided from
/// (0: limits only). Whole: a VM not listed is not shaped.
/// </summary>
public sealed record HostBandwidth(long CapacityBps, IReadOnlyDictionary<VmId, NetRate> Vms)
{
    public static readonly HostBandwidth None = new(0, new Dictionary<VmId, NetRate>());
}

/// <summary>
/// Bandwidth partitioning: one HTB tree per direction on an IFB device of this host's own, so that VMs share the host's
/// capacity work-conservingly (a class per VM: rate = its guaranteed share, ceil = its limit or the host; borrowing what
/// idle VMs leave in proportion to their guarantees). Each shaped tap has an nftables netdev table that sets the packet's
/// priority to its VM's class and forwards it to the IFB: what the guest sends (the tap's ingress) to the "up" IFB, what
/// it is sent (the tap's egress) to the "down" IFB; HTB puts a packet whose priority names one of its classes straight
/// into it, and the IFB hands it back to the tap where it left off. Only nftables and the kernel's HTB and IFB are
/// needed (no tc classifier or action modules, which minimal kernels lack). A packet comes back with its class's
/// priority set, which is how the table tells it from a new one. The VM's NICs share its class: netBps caps them
/// together, as diskBps caps its disks together.
/// </summary>
public sealed partial class HostNetworking
{
    /// <summary>The plan the host agent last sent; null until it sent one.</summary>
    private HostBandwidth? _bandwidth;

    /// <summary>The HTB class (minor number, the same in both trees) and rates of each VM shaped now.</summary>
    private readonly Dictionary<VmId, (int Minor, NetRate Rate)> _classes = [];

    /// <summary>Each tap with a bandwidth table now, and the class minor that table marks.</summary>
    private readonly Dictionary<string, int> _tapClasses = [];

    /// <summary>The capacity the IFBs' trees were built for by this process; null: not built (or removed).</summary>
    private long? _shapingCapacity;

    /// <summary>Whether what an earlier process of this node left (IFBs, tables) is gone.</summary>
    private bool _leftoversRemoved;

    private const int UpMajor = 1;
    private const int DownMajor = 2;

    /// <summary>This host's IFB devices: what its guests send ("oifu…") and what they are sent ("oifd…"), 12 characters.</summary>
    public (string Up, string Down) ShapingDevices => ("oifu" + _scope, "oifd" + _scope);

    /// <summary>The netdev table that steers a tap's packets into its VM's classes.</summary>
    private string BandwidthTable(string tap) => $"obw_{_scope}_{tap}";

    public async Task SetBandwidthAsync(HostBandwidth bandwidth, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            _bandwidth = bandwidth;
            await ApplyBandwidthAsync(cancellationToken);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Makes the IFBs' classes and the taps' tables what the last plan says (only what changed). Under the lock.</summary>
    private async Task ApplyBandwidthAsync(CancellationToken cancellationToken)
    {
        if (_bandwidth is not { } plan)
        {
            return;
        }

        if (plan.Vms.Count == 0)
        {
            if (_shapingCapacity is not null || !_leftoversRemoved)
            {
                await StopShapingAsync(cancellationToken);
            }

            return;
        }

        if (_shapingCapacity != plan.CapacityBps)
        {
            await StartShapingAsync(plan.CapacityBps, cancellationToken);
        }

        var (up, down) = ShapingDevices;
        var parent = plan.CapacityBps > 0 ? "1" : "";
        foreach (var (vm, rate) in plan.Vms)
        {
            if (_classes.TryGetValue(vm, out var current) && current.Rate == rate)
            {
                continue;
            }

            var minor = _classes.TryGetValue(vm, out current) ? current.Minor : FreeMinor();
            _classes[vm] = (minor, rate);
            foreach (var (device, major) in new[] { (up, UpMajor), (down, DownMajor) })
            {
                await RunAsync(cancellationToken, "tc", [.. HtbClassArguments(device, major, parent, minor, rate)]);
            }
        }

        var tapOwners = plan.Vms.Keys.ToDictionary(NetworkDeviceNames.TapPrefix, vm => _classes[vm].Minor, StringComparer.Ordinal);
        var taps = Links().Where(l => l.StartsWith("otp", StringComparison.Ordinal)).ToHashSet(StringComparer.Ordinal);
        foreach (var tap in taps)
        {
            int? wanted = tap.Length > 13 && tapOwners.TryGetValue(tap[..13], out var minor) ? minor : null;
            int? present = _tapClasses.TryGetValue(tap, out var marked) ? marked : null;
            if (wanted == present)
            {
                continue;
            }

            await RunWithInputAsync(cancellationToken, wanted is { } m ? BandwidthRules(BandwidthTable(tap), tap, m, up, down) : DeleteTable(BandwidthTable(tap), "netdev"),
                "nft", "-f", "-");
            if (wanted is { } set)
            {
                _tapClasses[tap] = set;
            }
            else
            {
                _tapClasses.Remove(tap);
            }
        }

        foreach (var gone in _tapClasses.Keys.Where(t => !taps.Contains(t)).ToList())
        {
            await RunWithInputAsync(cancellationToken, DeleteTable(BandwidthTable(gone), "netdev"), "nft", "-f", "-");
            _tapClasses.Remove(gone);
        }

        foreach (var vm in _classes.Keys.Where(vm => !plan.Vms.ContainsKey(vm)).ToList())
        {
            await RemoveClassAsync(vm, cancellationToken);
        }
    }

    /// <summary>The VM's classes, once no tap steers into them; nothing when it has none.</summary>
    private async Task RemoveClassAsync(VmId vm, CancellationToken cancellationToken)
    {
        if (!_classes.Remove(vm, out var removed))
        {
            return;
        }

        var (up, down) = ShapingDevices;
        foreach (var (device, major) in new[] { (up, UpMajor), (down, DownMajor) })
        {
            await RunAsync(cancellationToken, "tc", "class", "del", "dev", device, "classid", ClassId(major, removed.Minor));
        }
    }

    /// <summary>The VM's taps' tables and its classes, as the VM leaves this host (under the lock).</summary>
    private async Task RemoveBandwidthAsync(VmId vm, CancellationToken cancellationToken)
    {
        foreach (var tap in _tapClasses.Keys.Where(t => t.StartsWith(NetworkDeviceNames.TapPrefix(vm), StringComparison.Ordinal)).ToList())
        {
            await RunWithInputAsync(cancellationToken, DeleteTable(BandwidthTable(tap), "netdev"), "nft", "-f", "-");
            _tapClasses.Remove(tap);
        }

        await RemoveClassAsync(vm, cancellationToken);
        if (_classes.Count == 0 && _shapingCapacity is not null)
        {
            await StopShapingAsync(cancellationToken);
        }
    }

    /// <summary>
    /// Fresh trees on fresh IFBs: what an earlier process of this node left (its IFBs, its classes, its taps' tables) is
    /// removed first, so that every class and table is this process's own.
    /// </summary>
    private async Task StartShapingAsync(long capacityBps, CancellationToken cancellationToken)
    {
        await StopShapingAsync(cancellationToken);
        foreach (var (device, major) in new[] { (ShapingDevices.Up, UpMajor), (ShapingDevices.Down, DownMajor) })
        {
            await RunAsync(cancellationToken, "ip", "link", "add", device, "type", "ifb");
            // 1000 packets, as a NIC's: a shaped guest's TCP fills the queue rather than losing packets to it.
            await RunAsync(cancellationToken, "ip", "link", "set", device, "txqueuelen", "1000", "up");
            var root = major.ToString(CultureInfo.InvariantCulture) + ":";
            await RunAsync(cancellationToken, "tc", "qdisc", "add", "dev", device, "root", "handle", root, "htb");
            if (capacityBps > 0)
            {
                await RunAsync(cancellationToken, "tc", "class", "add", "dev", device, "parent", root, "classid", ClassId(major, 1),
                    "htb", "rate", Bits(capacityBps), "ceil", Bits(capacityBps), "quantum", "200000");
            }
        }

        _shapingCapacity = capacityBps;
    }

    /// <summary>No VM shaped here: the taps' tables and the IFBs go.</summary>
    private async Task StopShapingAsync(CancellationToken cancellationToken)
    {
        await DeleteBandwidthTablesAsync(cancellationToken);
        _classes.Clear();
        foreach (var device in new[] { ShapingDevices.Up, ShapingDevices.Down }.Where(LinkExists))
        {
            await RunAsync(cancellationToken, "ip", "link", "del", device);
        }

        _shapingCapacity = null;
        _leftoversRemoved = true;
    }

    /// <summary>Every bandwidth table of this node's, the ones this process knows and those an earlier one left.</summary>
    private async Task DeleteBandwidthTablesAsync(CancellationToken cancellationToken)
    {
        var prefix = $"obw_{_scope}_";
        var listed = (await RunWithInputAsync(cancellationToken, null, "nft", "list", "tables", "netdev"))
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(words => words is ["table", "netdev", _] && words[2].StartsWith(prefix, StringComparison.Ordinal))
            .Select(words => words[2]);
        foreach (var table in listed.Union(_tapClasses.Keys.Select(BandwidthTable)).ToList())
        {
            await RunWithInputAsync(cancellationToken, DeleteTable(table, "netdev"), "nft", "-f", "-");
        }

        _tapClasses.Clear();
    }

    private int FreeMinor()
    {
        var taken = _classes.Values.Select(c => c.Minor).ToHashSet();
        // 1 is the host's class; HTB's minors are 16 bits.
        return Enumerable.Range(2, 0xfffd).First(m => !taken.Contains(m));
    }

    private static string ClassId(int major, int minor) =>
        string.Create(CultureInfo.InvariantCulture, $"{major}:{minor:x}");

    /// <summary>tc counts bytes per second as "bps", which reads like bits: bits are said outright.</summary>
    private static string Bits(long bytesPerSecond) => string.Create(CultureInfo.InvariantCulture, $"{bytesPerSecond * 8}bit");

    /// <summary>
    /// A VM's class in one tree: under the host's class (<paramref name="parent"/> "1") where the host's capacity is known,
    /// else at the root. The quantum (what it takes per round when classes borrow) is a tenth of a second of its guarantee,
    /// HTB's own default, kept within the bounds HTB warns outside of.
    /// </summary>
    public static IReadOnlyList<string> HtbClassArguments(string device, int major, string parent, int minor, NetRate rate)
    {
        var quantum = Math.Clamp(rate.GuaranteedBps / 10, 1600, 200_000).ToString(CultureInfo.InvariantCulture);
        var parentId = parent.Length == 0 ? $"{major.ToString(CultureInfo.InvariantCulture)}:" : ClassId(major, 1);
        return ["class", "replace", "dev", device, "parent", parentId, "classid", ClassId(major, minor), "htb",
            "rate", Bits(rate.GuaranteedBps), "ceil", Bits(rate.CeilingBps), "quantum", quantum];
    }

    /// <summary>
    /// A tap's bandwidth table: a packet the guest sends (priority still none) gets its VM's class in the "up" tree and goes
    /// there; a packet to the guest gets its class in the "down" tree, unless it has it already (it is back from there).
    /// </summary>
    public static string BandwidthRules(string table, string tap, int minor, string up, string down) => new StringBuilder()
        .Append(DeleteTable(table, "netdev"))
        .Append(CultureInfo.InvariantCulture, $"table netdev {table} {{\n")
        .Append("  chain from_guest {\n")
        .Append(CultureInfo.InvariantCulture, $"    type filter hook ingress device \"{tap}\" priority 0; policy accept;\n")
        .Append(CultureInfo.InvariantCulture, $"    meta priority none meta priority set {ClassId(UpMajor, minor)} fwd to \"{up}\"\n")
        .Append("  }\n")
        .Append("  chain to_guest {\n")
        .Append(CultureInfo.InvariantCulture, $"    type filter hook egress device \"{tap}\" priority 0; policy accept;\n")
        .Append(CultureInfo.InvariantCulture, $"    meta priority != {ClassId(DownMajor, minor)} meta priority set {ClassId(DownMajor, minor)} fwd to \"{down}\"\n")
        .Append("  }\n")
        .Append("}\n")
        .ToString();
}
