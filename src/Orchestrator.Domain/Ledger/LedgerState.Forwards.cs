using System.Collections.Immutable;
using Orchestrator.Domain.Networks;
using Orchestrator.Domain.Vms;
using static Orchestrator.Domain.Ledger.ForwardEvents;

namespace Orchestrator.Domain.Ledger;

/// <summary>Port forwards: host ports of a tenant's granted range to its VMs' ports, wherever the VMs run.</summary>
public sealed partial record LedgerState
{
    /// <summary>Forwards by id.</summary>
    public ImmutableDictionary<string, PortForwardRecord> Forwards { get; init; } = ImmutableDictionary<string, PortForwardRecord>.Empty;

    public LedgerState WithForwards(IEnumerable<PortForwardRecord> forwards) => this with { Forwards = forwards.ToImmutableDictionary(f => f.Id) };

    public IEnumerable<PortForwardRecord> ForwardsOf(TenantId tenant, string networkId) =>
        Forwards.Values.Where(f => f.Tenant == tenant && f.NetworkId == networkId).OrderBy(f => f.HostPort).ThenBy(f => f.Protocol, StringComparer.Ordinal);

    /// <summary>What the host of <paramref name="vm"/> programs for its NIC <paramref name="nic"/>; null when it has none.</summary>
    public IReadOnlyList<NicForward>? ForwardsTo(VmId vm, int nic) =>
        Forwards.Values.Where(f => f.Vm == vm && f.Nic == nic).OrderBy(f => f.HostPort).ThenBy(f => f.Protocol, StringComparer.Ordinal)
            .Select(f => new NicForward(f.Protocol, f.HostPort, f.GuestPort)).ToList() is { Count: > 0 } forwards ? forwards : null;

    /// <summary>The VMs whose hosts must program their forwards again for <paramref name="evt"/>.</summary>
    public static IEnumerable<VmId> ForwardsTouchedBy(ILedgerEvent evt) => evt switch
    {
        ForwardAdded e => [e.Forward.Vm],
        ForwardRemoved e => [e.Vm],
        _ => [],
    };

    private Decision DecideForward(ILedgerCommand command, DateTimeOffset now) => command switch
    {
        ForwardCommands.AddForward c => DecideAddForward(c, now),
        ForwardCommands.RemoveForward c => FindNetwork(c.Tenant, c.Network) is not { } network
            ? Decision.Refuse(Refusal.NotFound($"no network '{FieldError.Echo(c.Network)}'"))
            : Forwards.GetValueOrDefault(c.ForwardId) is { } forward && forward.Tenant == c.Tenant && forward.NetworkId == network.Id
                ? Decision.Accept(new ForwardRemoved(forward.Id, forward.Tenant, forward.Vm))
                : Decision.Refuse(Refusal.NotFound($"network '{c.Network}' has no forward '{FieldError.Echo(c.ForwardId)}'")),
        _ => throw new ArgumentOutOfRangeException(nameof(command)),
    };

    private Decision DecideAddForward(ForwardCommands.AddForward c, DateTimeOffset now)
    {
        if (FindNetwork(c.Tenant, c.Network) is not { } network)
        {
            return Decision.Refuse(Refusal.NotFound($"no network '{FieldError.Echo(c.Network)}'"));
        }

        if (FindVm(c.Tenant, c.Vm) is not { } vm)
        {
            return Decision.Refuse(Refusal.NotFound($"no VM '{FieldError.Echo(c.Vm)}'"));
        }

        var errors = new List<FieldError>();
        if (c.Protocol is not (PortForwardRecord.Tcp or PortForwardRecord.Udp))
        {
            errors.Add(new FieldError("protocol", $"must be tcp or udp, was '{FieldError.Echo(c.Protocol)}'"));
        }

        if (c.GuestPort is < 1 or > 65535)
        {
            errors.Add(new FieldError("port", $"must be 1-65535, was {c.GuestPort}"));
        }

        var granted = Tenants.GetValueOrDefault(c.Tenant)?.Quota.ForwardPorts is { } text && PortRange.TryParse(text, out var range, out _) ? range : (PortRange?)null;
        if (granted is null)
        {
            errors.Add(new FieldError("hostPort", "no host ports are granted to this tenant for forwards (an admin sets quota.forwardPorts)"));
        }
        else if (!granted.Value.Contains(c.HostPort))
        {
            errors.Add(new FieldError("hostPort", $"must be in this tenant's forward ports {granted} (quota.forwardPorts), was {c.HostPort}"));
        }

        var nic = (vm.Spec.Nics ?? []).Select((n, i) => (n, i)).FirstOrDefault(x => x.n.Network == network.Name);
        if (nic.n is null)
        {
            errors.Add(new FieldError("vm", $"VM '{c.Vm}' has no NIC on network '{c.Network}'"));
        }

        if (!network.Gateway)
        {
            errors.Add(new FieldError("network", $"network '{c.Network}' has no gateway: nothing reaches it from outside"));
        }

        if (errors.Count > 0)
        {
            return Decision.Refuse(Refusal.Invalid(errors));
        }

        if (Forwards.Values.FirstOrDefault(f => f.HostPort == c.HostPort && f.Protocol == c.Protocol) is not null)
        {
            return Decision.Refuse(Refusal.Conflict("hostPort", $"host port {c.Protocol} {c.HostPort} is already forwarded"));
        }

        if (Forwards.Values.Count(f => f.Tenant == c.Tenant) >= PortForwardRecord.MaxPerTenant)
        {
            return Decision.Refuse(Refusal.Conflict("hostPort", $"at most {PortForwardRecord.MaxPerTenant} forwards per tenant"));
        }

        return Forwards.ContainsKey(c.Id)
            ? Decision.Refuse(Refusal.Conflict("id", $"forward id {c.Id} is taken"))
            : Decision.Accept(new ForwardAdded(new PortForwardRecord(c.Id, c.Tenant, network.Id, vm.Id, nic.i, c.Protocol, c.HostPort, c.GuestPort, now)));
    }

    /// <summary>Folds in forwards added and removed; a VM released takes its forwards with it.</summary>
    private LedgerState ApplyForwards(ILedgerEvent evt) => evt switch
    {
        ForwardAdded e => this with { Forwards = Forwards.SetItem(e.Forward.Id, e.Forward) },
        ForwardRemoved e => this with { Forwards = Forwards.Remove(e.Id) },
        LedgerEvents.VmReleased e when !Forwards.IsEmpty => WithoutForwardsOf(e.VmId),
        _ => this,
    };

    // Apart from the switch: a lambda there that captured an arm's event made every Apply allocate its closure.
    private LedgerState WithoutForwardsOf(VmId vm) =>
        Forwards.Values.Any(f => f.Vm == vm)
            ? this with { Forwards = Forwards.RemoveRange(Forwards.Values.Where(f => f.Vm == vm).Select(f => f.Id)) }
            : this;
}
