using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

/// <summary>Drives a <see cref="LedgerState"/> the way the scheduler actor does: decide, then apply.</summary>
internal sealed class LedgerDriver
{
    public static readonly DateTimeOffset Now = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);

    public LedgerDriver(LedgerRules? rules = null)
    {
        Rules = rules ?? LedgerRules.Create(["demo", "other"]);
    }

    public LedgerRules Rules { get; }
    public LedgerState State { get; private set; } = LedgerState.Empty;
    public List<ILedgerEvent> Journal { get; } = [];

    public Decision Send(ILedgerCommand command)
    {
        var decision = State.Decide(command, Rules, Now);
        foreach (var evt in decision.Events)
        {
            State = State.Apply(evt);
            Journal.Add(evt);
        }

        return decision;
    }

    public void Host(string id, int cpus = 8, long memoryMiB = 16384, string driver = "qemu", HostAccelerator? accelerator = null) =>
        Send(new LedgerCommands.RegisterHost(new HostId(id), cpus, memoryMiB, driver, Accelerator: accelerator));

    public VmRecord Create(string name, int vcpus = 1, int memoryMiB = 256, string tenant = "system", VmResources? resources = null,
        string? driver = null, string? accelerator = null)
    {
        if (State.FindTenant(new TenantId(tenant)) is null)
        {
            Assert.Null(Send(new LedgerCommands.CreateTenant(new TenantId(tenant), Tenants.TenantQuota.Unlimited)).Refusal);
        }

        var id = VmId.New();
        var decision = Send(new LedgerCommands.CreateVm(new TenantId(tenant),
            new VmSpec(name, vcpus, memoryMiB, "demo", RestartPolicy.OnFailure, resources, Driver: driver, Accelerator: accelerator), id));
        Assert.Null(decision.Refusal);
        return State.Vms[id];
    }
}
