using System.Collections.Immutable;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Networks;

/// <summary>
/// A tenant's network: its name (unique in the tenant), its CIDR (two tenants may use the same one), whether its
/// router is a gateway (advertised by DHCP, NAT out), and the VXLAN id the ledger gave it (unique in the cluster).
/// </summary>
public sealed record NetworkRecord(string Id, TenantId Tenant, string Name, string Cidr, bool Gateway, int Vni, DateTimeOffset CreatedAt)
{
    /// <summary>Networks one tenant may have.</summary>
    public const int MaxPerTenant = 16;

    /// <summary>VXLAN ids are 24 bits.</summary>
    public const int MaxVni = (1 << 24) - 1;

    public Ipv4Cidr Range() => Ipv4Cidr.TryParse(Cidr, out var cidr, out _) ? cidr : throw new InvalidOperationException($"network {Id} holds a bad CIDR");
}

/// <summary>
/// A VM's network card as its spec has it: the tenant's network by name, and the address asked for. Once the ledger
/// accepted the VM, <see cref="Ip"/> and <see cref="Mac"/> are the ones it allocated, kept for the VM's life (restarts
/// and re-placements included).
/// </summary>
/// <param name="SecurityGroups">the tenant's security groups (by name) allowing traffic into this NIC; none: only its own network's.</param>
public sealed record VmNic(string Network, string? Ip = null, string? Mac = null, IReadOnlyList<string>? SecurityGroups = null);

/// <summary>What a network's addresses and MACs are taken by. Derived from the VMs' specs, never persisted on its own.</summary>
public sealed record NetworkLeases(ImmutableDictionary<uint, VmId> Addresses, ImmutableHashSet<string> Macs)
{
    public static readonly NetworkLeases None = new(ImmutableDictionary<uint, VmId>.Empty, ImmutableHashSet.Create<string>(StringComparer.Ordinal));

    public bool IsEmpty => Addresses.IsEmpty && Macs.IsEmpty;

    public NetworkLeases Take(VmId vm, VmNic nic) => new(
        nic.Ip is { } ip && Ipv4Cidr.TryParseAddress(ip, out var address) ? Addresses.SetItem(address, vm) : Addresses,
        nic.Mac is { } mac ? Macs.Add(mac) : Macs);

    public NetworkLeases Release(VmNic nic) => new(
        nic.Ip is { } ip && Ipv4Cidr.TryParseAddress(ip, out var address) ? Addresses.Remove(address) : Addresses,
        nic.Mac is { } mac ? Macs.Remove(mac) : Macs);
}

/// <summary>What a host needs to plug one NIC: the bridge (from the VNI), the tap's MAC and the address DHCP hands out.</summary>
/// <param name="Index">the NIC's place in the VM's spec: taps are named from the VM's id and this.</param>
/// <param name="Inbound">what its security groups let in beyond its own network's guests (none: nothing more).</param>
/// <param name="Forwards">the port forwards to this NIC, programmed on whichever host runs it.</param>
public sealed record NicAssignment(int Index, string NetworkId, int Vni, string Mac, string Ip, int Prefix, bool Gateway,
    IReadOnlyList<InboundRule>? Inbound = null, IReadOnlyList<NicForward>? Forwards = null)
{
    /// <summary>Compares the rules by value (a record compares lists by reference): an assignment told again is the same one.</summary>
    public bool Equals(NicAssignment? other) =>
        other is not null && (Index, NetworkId, Vni, Mac, Ip, Prefix, Gateway) == (other.Index, other.NetworkId, other.Vni, other.Mac, other.Ip, other.Prefix, other.Gateway)
        && (Inbound ?? []).SequenceEqual(other.Inbound ?? []) && (Forwards ?? []).SequenceEqual(other.Forwards ?? []);

    public override int GetHashCode() => HashCode.Combine(Index, NetworkId, Vni, Mac, Ip);

    public string RouterAddress() => Ipv4Cidr.Format(new Ipv4Cidr(Network(), Prefix).Router);

    private uint Network() => Ipv4Cidr.TryParseAddress(Ip, out var ip) ? ip & new Ipv4Cidr(0, Prefix).Mask : 0;

    /// <summary>The network in CIDR form ("10.0.0.0/24").</summary>
    public string CidrText() => new Ipv4Cidr(Network(), Prefix).ToString();
}

/// <summary>Locally administered, unicast MACs (02:…): the ledger derives one from the VM's id and probes past any taken.</summary>
public static class NicMacs
{
    public static string For(VmId vm, int index, int probe)
    {
        var bytes = vm.Value.ToByteArray();
        var n = ((ulong)bytes[0] << 32 | (ulong)bytes[1] << 24 | (ulong)bytes[2] << 16 | (ulong)bytes[3] << 8 | bytes[4])
                + (ulong)index * 7919 + (ulong)probe;
        return $"02:{(n >> 32) & 0xff:x2}:{(n >> 24) & 0xff:x2}:{(n >> 16) & 0xff:x2}:{(n >> 8) & 0xff:x2}:{n & 0xff:x2}";
    }
}
