using System.Collections.Immutable;
using Orchestrator.Domain.Networks;
using Orchestrator.Domain.Vms;
using static Orchestrator.Domain.Ledger.LedgerEvents;
using static Orchestrator.Domain.Ledger.NetworkEvents;

namespace Orchestrator.Domain.Ledger;

/// <summary>Tenant networks and their address management (IPAM): networks, VNIs, and the NICs' addresses and MACs.</summary>
public sealed partial record LedgerState
{
    public const int MaxNicsPerVm = 4;

    /// <summary>Networks by id.</summary>
    public ImmutableDictionary<string, NetworkRecord> Networks { get; init; } = ImmutableDictionary<string, NetworkRecord>.Empty;

    /// <summary>Addresses and MACs taken on each network (by network id), derived from the VMs' specs.</summary>
    public ImmutableDictionary<string, NetworkLeases> Leases { get; init; } = ImmutableDictionary<string, NetworkLeases>.Empty;

    public NetworkRecord? FindNetwork(TenantId tenant, string name) =>
        Networks.Values.FirstOrDefault(n => n.Tenant == tenant && n.Name == name);

    public IEnumerable<NetworkRecord> NetworksOf(TenantId tenant) =>
        Networks.Values.Where(n => n.Tenant == tenant).OrderBy(n => n.Name, StringComparer.Ordinal);

    public NetworkLeases LeasesOf(string networkId) => Leases.GetValueOrDefault(networkId) ?? NetworkLeases.None;

    /// <summary>What the VM's host needs to plug its NICs; empty for a VM without any.</summary>
    public IReadOnlyList<NicAssignment> NicsOf(VmRecord vm) =>
        (vm.Spec.Nics ?? []).Select((nic, index) => FindNetwork(vm.Tenant, nic.Network) is { } network && nic is { Ip: { } ip, Mac: { } mac }
                ? new NicAssignment(index, network.Id, network.Vni, mac, ip, network.Range().Prefix, network.Gateway, InboundRulesOf(vm.Tenant, nic),
                    ForwardsTo(vm.Id, index))
                : null)
            .OfType<NicAssignment>()
            .ToList();

    /// <summary>The addresses the tenant's VMs hold on its networks (one per NIC).</summary>
    public int AddressesOf(TenantId tenant) => NetworksOf(tenant).Sum(n => LeasesOf(n.Id).Addresses.Count);

    private Decision DecideCreateNetwork(NetworkCommands.CreateNetwork c, DateTimeOffset now)
    {
        var errors = new List<FieldError>();
        if (!VmSpecValidator.IsValidName(c.Name))
        {
            errors.Add(new FieldError("name", "must be 1-63 characters of lowercase letters, digits and '-', starting with a letter and not ending with '-'"));
        }

        if (!Ipv4Cidr.TryParse(c.Cidr, out var cidr, out var problem))
        {
            errors.Add(new FieldError("cidr", problem));
        }

        if (errors.Count > 0)
        {
            return Decision.Refuse(Refusal.Invalid(errors));
        }

        if (WhyNoNew(c.Tenant, "network", c.Name, c.Id, FindNetwork(c.Tenant, c.Name) is not null, Networks.ContainsKey(c.Id),
                NetworksOf(c.Tenant).Count(), NetworkRecord.MaxPerTenant, out var tenant) is { } refused)
        {
            return refused;
        }

        if (tenant.Quota.NetworksExceeded(NetworksOf(c.Tenant).Count()) is { } exceeded)
        {
            return Decision.Refuse(Refusal.Forbidden(exceeded));
        }

        // The lowest VNI free: a deleted network's comes back, and the ids stay small enough to read in device names.
        var taken = Networks.Values.Select(n => n.Vni).ToHashSet();
        var vni = Enumerable.Range(1, NetworkRecord.MaxVni).First(v => !taken.Contains(v));
        return Decision.Accept(new NetworkCreated(c.Id, c.Tenant, c.Name, cidr.ToString(), c.Gateway, vni, now));
    }

    private Decision DecideDeleteNetwork(NetworkCommands.DeleteNetwork c)
    {
        if (FindNetwork(c.Tenant, c.Name) is not { } network)
        {
            return Decision.Refuse(Refusal.NotFound($"no network '{FieldError.Echo(c.Name)}'"));
        }

        var users = LeasesOf(network.Id).Addresses.Values.Distinct().Count();
        return users > 0
            ? Decision.Refuse(Refusal.Conflict("name", $"network '{c.Name}' still has the NICs of {users} VM(s); delete them first"))
            : Decision.Accept(new NetworkDeleted(network.Id, network.Tenant));
    }

    /// <summary>
    /// The spec with each NIC's address and MAC allocated: the one asked for when it is in range and free, else the
    /// lowest free. Part of the create decision, so concurrent creates never get one address twice.
    /// </summary>
    private (VmSpec? Spec, Refusal? Refusal) AllocateNics(TenantId tenant, VmSpec spec, VmId vm)
    {
        if (spec.Nics is not { Count: > 0 } nics)
        {
            return (spec, null);
        }

        if (nics.Count > MaxNicsPerVm)
        {
            return (null, Refusal.Invalid([new FieldError("nics", $"at most {MaxNicsPerVm} NICs per VM, was {nics.Count}")]));
        }

        if (FindTenant(tenant)?.Quota.AddressesExceeded(AddressesOf(tenant), nics.Count) is { } exceeded)
        {
            return (null, Refusal.Forbidden(exceeded));
        }

        var leases = Leases;
        var allocated = new List<VmNic>();
        for (var i = 0; i < nics.Count; i++)
        {
            var field = $"nics[{i}]";
            if (FindNetwork(tenant, nics[i].Network) is not { } network)
            {
                return (null, Refusal.Invalid([new FieldError($"{field}.network", $"no network '{FieldError.Echo(nics[i].Network)}'")]));
            }

            if (WhyNotGroups(tenant, nics[i].SecurityGroups, $"{field}.securityGroups") is { } badGroups)
            {
                return (null, Refusal.Invalid([badGroups]));
            }

            var range = network.Range();
            var taken = leases.GetValueOrDefault(network.Id) ?? NetworkLeases.None;
            uint address;
            if (nics[i].Ip is { } asked)
            {
                if (!Ipv4Cidr.TryParseAddress(asked, out address) || !range.IsGuestAddress(address))
                {
                    return (null, Refusal.Invalid([new FieldError($"{field}.ip",
                        $"must be an address of {range} from {Ipv4Cidr.Format(range.FirstGuest)} to {Ipv4Cidr.Format(range.LastGuest)} " +
                        $"({Ipv4Cidr.Format(range.Router)} is the network's router)")]));
                }

                if (taken.Addresses.ContainsKey(address))
                {
                    return (null, Refusal.Conflict($"{field}.ip", $"{asked} is already taken on network '{network.Name}'"));
                }
            }
            else
            {
                address = range.FirstGuest;
                while (address <= range.LastGuest && taken.Addresses.ContainsKey(address))
                {
                    address++;
                }

                if (address > range.LastGuest)
                {
                    return (null, Refusal.Conflict($"{field}.network", $"network '{network.Name}' ({range}) has no free address"));
                }
            }

            var probe = 0;
            while (taken.Macs.Contains(NicMacs.For(vm, i, probe)))
            {
                probe++;
            }

            var nic = new VmNic(network.Name, Ipv4Cidr.Format(address), NicMacs.For(vm, i, probe),
                nics[i].SecurityGroups is { Count: > 0 } groups ? groups : null);
            allocated.Add(nic);
            leases = leases.SetItem(network.Id, taken.Take(vm, nic));
        }

        return (spec with { Nics = allocated }, null);
    }

    /// <summary>Folds in what an event changes about networks and their leases; <paramref name="next"/> is the rest of it applied.</summary>
    private LedgerState ApplyNetworks(ILedgerEvent evt, LedgerState next) => evt switch
    {
        NetworkCreated e => next with
        {
            Networks = next.Networks.SetItem(e.Id, new NetworkRecord(e.Id, e.Tenant, e.Name, e.Cidr, e.Gateway, e.Vni, e.At)),
        },
        NetworkDeleted e => next with { Networks = next.Networks.Remove(e.Id), Leases = next.Leases.Remove(e.Id) },
        VmRequested e when e.Spec.Nics is { Count: > 0 } => next with { Leases = ChangeLeases(next.Leases, e.VmId, e.Tenant, e.Spec, take: true) },
        VmReleased e when Vms.TryGetValue(e.VmId, out var gone) && gone.Spec.Nics is { Count: > 0 } =>
            next with { Leases = ChangeLeases(next.Leases, e.VmId, gone.Tenant, gone.Spec, take: false) },
        _ => next,
    };

    private ImmutableDictionary<string, NetworkLeases> ChangeLeases(ImmutableDictionary<string, NetworkLeases> leases, VmId vm, TenantId tenant,
        VmSpec spec, bool take)
    {
        foreach (var nic in spec.Nics ?? [])
        {
            if (FindNetwork(tenant, nic.Network) is { } network)
            {
                var now = leases.GetValueOrDefault(network.Id) ?? NetworkLeases.None;
                leases = leases.SetItem(network.Id, take ? now.Take(vm, nic) : now.Release(nic));
            }
        }

        return leases;
    }

    /// <summary>The leases of a state rebuilt from a snapshot: every NIC of every VM it holds.</summary>
    private LedgerState WithLeasesRebuilt()
    {
        var leases = ImmutableDictionary<string, NetworkLeases>.Empty;
        foreach (var vm in Vms.Values.Where(v => v.Spec.Nics is { Count: > 0 }))
        {
            leases = ChangeLeases(leases, vm.Id, vm.Tenant, vm.Spec, take: true);
        }

        return this with { Leases = leases };
    }
}
