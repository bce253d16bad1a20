using Orchestrator.Domain.Networks;

namespace Orchestrator.Domain.Ledger;

/// <summary>Requests about a tenant's security groups. Each says which states allow it.</summary>
public static class SecurityGroupCommands
{
    /// <summary>Allowed for an existing, enabled tenant with fewer than 16 groups and a valid name it does not use yet.</summary>
    public sealed record CreateSecurityGroup(string Id, TenantId Tenant, string Name) : ILedgerCommand;

    /// <summary>Allowed while no NIC has the group and no other group's rule names it.</summary>
    public sealed record DeleteSecurityGroup(TenantId Tenant, string Name) : ILedgerCommand;

    /// <summary>Allowed for a rule <see cref="SecurityRule.Create"/> accepted whose remote group (if any) is the tenant's.</summary>
    public sealed record AddSecurityRule(TenantId Tenant, string Group, SecurityRule Rule) : ILedgerCommand;

    public sealed record RemoveSecurityRule(TenantId Tenant, string Group, string RuleId) : ILedgerCommand;

    /// <summary>Replaces the groups of the VM's NIC <paramref name="Nic"/> (its place in the spec), running or not.</summary>
    public sealed record SetNicSecurityGroups(TenantId Tenant, string Vm, int Nic, IReadOnlyList<string> Groups) : ILedgerCommand;
}

public static class SecurityGroupEvents
{
    public sealed record SecurityGroupCreated(string Id, TenantId Tenant, string Name, DateTimeOffset At) : ILedgerEvent;

    public sealed record SecurityGroupDeleted(string Id, TenantId Tenant) : ILedgerEvent;

    public sealed record SecurityRuleAdded(string GroupId, TenantId Tenant, SecurityRule Rule) : ILedgerEvent;

    public sealed record SecurityRuleRemoved(string GroupId, TenantId Tenant, string RuleId) : ILedgerEvent;

    public sealed record NicSecurityGroupsChanged(VmId VmId, TenantId Tenant, int Nic, IReadOnlyList<string> Groups) : IVmLedgerEvent;
}
