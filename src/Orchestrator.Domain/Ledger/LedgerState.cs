using System.Collections.Immutable;
using System.Runtime.InteropServices;
using Orchestrator.Domain.Collections;
using Orchestrator.Domain.Hosts;
using Orchestrator.Domain.Networks;
using Orchestrator.Domain.Placement;
using Orchestrator.Domain.Shares;
using Orchestrator.Domain.Storage;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;
using static Orchestrator.Domain.Ledger.LedgerEvents;

namespace Orchestrator.Domain.Ledger;

/// <summary>What the ledger needs to know besides its own state to decide.</summary>
public sealed record LedgerRules(PlacementPolicy Placement, VmSpecLimits Limits, IReadOnlySet<string> Images)
{
    /// <summary>Hosts the failure detector cannot reach now: they take no new VMs (not journaled; the scheduler keeps it).</summary>
    public IReadOnlySet<HostId> Unreachable { get; init; } = new HashSet<HostId>();

    public static LedgerRules Create(IEnumerable<string> images) =>
        new(PlacementPolicy.Default, VmSpecLimits.Default, images.ToHashSet(StringComparer.Ordinal));
}

/// <summary>
/// The scheduler's state: hosts, VMs and their allocations. Pure: <see cref="Decide"/> turns a command into events,
/// <see cref="Apply"/> folds an event in. The persistent actor only persists what Decide returns and applies it.
/// </summary>
public sealed partial record LedgerState(
    PersistentHashMap<HostId, HostRecord> Hosts,
    PersistentHashMap<VmId, VmRecord> Vms,
    PersistentHashMap<TenantId, PersistentHashMap<string, VmId>> Names)
{
    public static readonly LedgerState Empty = new(
        PersistentHashMap<HostId, HostRecord>.Empty,
        PersistentHashMap<VmId, VmRecord>.Empty,
        PersistentHashMap<TenantId, PersistentHashMap<string, VmId>>.Empty);

    /// <summary>Tenants other than the system tenant, which always exists, has no quota and cannot be disabled.</summary>
    public ImmutableDictionary<TenantId, TenantRecord> Tenants { get; init; } = ImmutableDictionary<TenantId, TenantRecord>.Empty;

    /// <summary>API keys by their public id (revoked ones too: an id is never reused).</summary>
    public ImmutableDictionary<string, ApiKeyRecord> Keys { get; init; } = ImmutableDictionary<string, ApiKeyRecord>.Empty;

    /// <summary>Automation rules by id.</summary>
    public ImmutableDictionary<string, RuleRecord> Rules { get; init; } = ImmutableDictionary<string, RuleRecord>.Empty;

    /// <summary>Webhooks by id.</summary>
    public ImmutableDictionary<string, WebhookRecord> Webhooks { get; init; } = ImmutableDictionary<string, WebhookRecord>.Empty;

    /// <summary>What each tenant's VMs take, kept up to date so a quota check never scans.</summary>
    public PersistentHashMap<TenantId, TenantUsage> Usage { get; init; } = PersistentHashMap<TenantId, TenantUsage>.Empty;

    /// <summary>Rebuilds the state from a snapshot's records.</summary>
    public static LedgerState FromRecords(IEnumerable<HostRecord> hosts, IEnumerable<VmRecord> vms,
        IEnumerable<TenantRecord>? tenants = null, IEnumerable<ApiKeyRecord>? keys = null, IEnumerable<WebhookRecord>? webhooks = null,
        IEnumerable<RuleRecord>? rules = null, IEnumerable<NetworkRecord>? networks = null, IEnumerable<VolumeRecord>? volumes = null,
        IEnumerable<SnapshotRecord>? snapshots = null)
    {
        var vmList = vms as IReadOnlyList<VmRecord> ?? vms.ToList();
        // The two maps of every VM cost nearly all of the rebuild at a million VMs, and neither needs the other.
        var byName = Task.Run(() => NamesByTenant(vmList));
        // The VMs by host and pending: from the same list, beside the maps (else the first query builds it).
        var vmIndex = Task.Run(() => VmIndex.Build(vmList));
        var byId = InHashOrder(vmList, v => v.Id, v => v);
        var usage = SumUsage(vmList);
        var state = new LedgerState(hosts.ToPersistentHashMap(h => h.Id), byId, byName.GetAwaiter().GetResult())
        {
            Tenants = (tenants ?? []).ToImmutableDictionary(t => t.Id),
            Keys = (keys ?? []).ToImmutableDictionary(k => k.KeyId),
            Webhooks = (webhooks ?? []).ToImmutableDictionary(w => w.Id),
            Rules = (rules ?? []).ToImmutableDictionary(r => r.Id),
            Usage = usage,
            DiskAllocations = SumDisks(vmList),
            Networks = (networks ?? []).ToImmutableDictionary(n => n.Id),
            StorageUsage = SumStorage(vmList),
        };
        state = state.Networks.IsEmpty ? state : state.WithLeasesRebuilt();
        state = volumes is null ? state : state.WithVolumes(volumes);
        state = snapshots is null ? state : state.WithSnapshots(snapshots);
        state._vmIndex = new(state.Vms, vmIndex.GetAwaiter().GetResult());
        return state;
    }

    /// <summary>
    /// A map of the VMs built as a whole (<see cref="PersistentHashMap.CreateRange{TKey, TValue}"/>): each node made once,
    /// at its final size, rather than copied at each of its entries' adds. A key twice throws, as ToImmutableDictionary did.
    /// </summary>
    private static PersistentHashMap<TKey, TValue> InHashOrder<TKey, TValue>(IReadOnlyList<VmRecord> vms, Func<VmRecord, TKey> key,
        Func<VmRecord, TValue> value) where TKey : notnull
    {
        var entries = new KeyValuePair<TKey, TValue>[vms.Count];
        for (var i = 0; i < entries.Length; i++)
        {
            var vm = vms[i];
            entries[i] = new KeyValuePair<TKey, TValue>(key(vm), value(vm));
        }

        return PersistentHashMap.CreateRange<TKey, TValue>(entries);
    }

    /// <summary>Each tenant's VMs by name, each map built in hash order. A name twice in a tenant throws.</summary>
    private static PersistentHashMap<TenantId, PersistentHashMap<string, VmId>> NamesByTenant(IReadOnlyList<VmRecord> vms)
    {
        var byTenant = new Dictionary<TenantId, List<VmRecord>>();
        foreach (var vm in vms)
        {
            ref var own = ref CollectionsMarshal.GetValueRefOrAddDefault(byTenant, vm.Tenant, out _);
            (own ??= []).Add(vm);
        }

        return byTenant.ToPersistentHashMap(t => t.Key, t => InHashOrder(t.Value, v => v.Spec.Name, v => v.Id));
    }

    private static PersistentHashMap<TenantId, PersistentHashMap<string, VmId>> WithName(
        PersistentHashMap<TenantId, PersistentHashMap<string, VmId>> names, TenantId tenant, string name, VmId id) =>
        names.SetItem(tenant, names.GetValueOrDefault(tenant, PersistentHashMap<string, VmId>.Empty).Add(name, id));

    private static PersistentHashMap<TenantId, PersistentHashMap<string, VmId>> WithoutName(
        PersistentHashMap<TenantId, PersistentHashMap<string, VmId>> names, TenantId tenant, string name)
    {
        if (!names.TryGetValue(tenant, out var own))
        {
            return names;
        }

        own = own.Remove(name);
        return own.IsEmpty ? names.Remove(tenant) : names.SetItem(tenant, own);
    }

    private static PersistentHashMap<TenantId, TenantUsage> SumUsage(IReadOnlyList<VmRecord> vms)
    {
        var sums = new Dictionary<TenantId, (int Vms, int Vcpus, long MemoryMiB)>();
        foreach (var vm in vms)
        {
            ref var sum = ref CollectionsMarshal.GetValueRefOrAddDefault(sums, vm.Tenant, out _);
            sum = (sum.Vms + 1, sum.Vcpus + vm.Spec.Vcpus, sum.MemoryMiB + vm.Spec.MemoryMiB);
        }

        return sums.ToPersistentHashMap(s => s.Key, s => new TenantUsage(s.Value.Vms, s.Value.Vcpus, s.Value.MemoryMiB));
    }

    public TenantUsage UsageOf(TenantId tenant) => Usage.GetValueOrDefault(tenant) ?? TenantUsage.None;

    /// <summary>The tenant as the API shows it; the system tenant is synthesized. Null when unknown.</summary>
    public TenantRecord? FindTenant(TenantId tenant) => tenant == TenantId.System ? SystemTenant : Tenants.GetValueOrDefault(tenant);

    private static readonly TenantRecord SystemTenant = new(TenantId.System, TenantQuota.Unlimited, false, DateTimeOffset.MinValue);

    /// <summary>
    /// Why the tenant may not create a <paramref name="kind"/> (network, volume) of that name and id: the tenant unknown (404)
    /// or disabled (403), the name or the id taken (409), or the tenant at the most it may have (403). Null, with the
    /// tenant, when it may.
    /// </summary>
    private Decision? WhyNoNew(TenantId tenantId, string kind, string name, string id, bool nameTaken, bool idTaken, int count, int max,
        out TenantRecord tenant)
    {
        tenant = FindTenant(tenantId)!;
        return tenant is null ? Decision.Refuse(Refusal.NotFound($"no tenant '{FieldError.Echo(tenantId.Value)}'"))
            : tenant.Disabled ? Decision.Refuse(Refusal.Forbidden(new FieldError("tenant", $"tenant '{tenantId}' is disabled")))
            : nameTaken ? Decision.Refuse(Refusal.Conflict("name", $"a {kind} named '{name}' already exists"))
            : idTaken ? Decision.Refuse(Refusal.Conflict("id", $"a {kind} with id '{FieldError.Echo(id)}' already exists"))
            : count >= max ? Decision.Refuse(Refusal.Forbidden(new FieldError($"{kind}s", $"tenant '{tenantId}' has {max} {kind}s, the most it may have")))
            : null;
    }

    public VmRecord? FindVm(TenantId tenant, string name) =>
        Names.TryGetValue(tenant, out var own) && own.TryGetValue(name, out var id) ? Vms[id] : null;

    /// <summary>The tenant's VMs, from its names (every VM has one): no index by tenant to keep beside them.</summary>
    public IEnumerable<VmRecord> VmsOf(TenantId tenant) =>
        Names.TryGetValue(tenant, out var own) ? own.Values.Select(id => Vms[id]) : [];

    /// <summary>
    /// Builds the indexes this state derives from its hosts and VMs now, rather than in the first request that needs
    /// them: after a recovery of a million VMs that is a second or more the scheduler spends before it answers.
    /// </summary>
    public void BuildIndexes()
    {
        _ = Capacity;
        _ = VmLookup;
    }

    /// <summary>The VMs waiting for a host, in the order they get one: oldest first.</summary>
    public IEnumerable<VmRecord> PendingVms => VmLookup.Pending;

    public IEnumerable<VmRecord> VmsOn(HostId host) =>
        VmLookup.ByHost.TryGetValue(host, out var ids) ? ids.Select(id => Vms[id]) : [];

    /// <summary>What the VM's host is told about it: its allocation, with its tenant's CPU pool.</summary>
    public VmAssignment AssignmentOf(VmRecord vm) =>
        VmAssignment.From(vm, Tenants.GetValueOrDefault(vm.Tenant)?.Pool, NicsOf(vm)) with { Volumes = VolumeAssignmentsOf(vm), ImageDisk = ImageOf(vm)?.Disk };

    public Decision Decide(ILedgerCommand command, LedgerRules rules, DateTimeOffset now) => command switch
    {
        LedgerCommands.RegisterHost c => DecideRegisterHost(c, rules, now),
        LedgerCommands.LoseHost c => DecideLoseHost(c, rules, now),
        LedgerCommands.CreateVm c => DecideCreate(c, rules, now),
        LedgerCommands.CreateTenant c => DecideCreateTenant(c, now),
        LedgerCommands.UpdateTenant c => DecideUpdateTenant(c),
        LedgerCommands.IssueKey c => DecideIssueKey(c, now),
        LedgerCommands.RevokeKey c => DecideRevokeKey(c, now),
        LedgerCommands.CreateWebhook c => DecideCreateWebhook(c, now),
        LedgerCommands.CreateRule c => DecideCreateRule(c, now),
        LedgerCommands.DeleteRule c => Rules.TryGetValue(c.Id, out var rule) && rule.Tenant == c.Tenant
            ? Decision.Accept(new RuleDeleted(c.Id, c.Tenant))
            : Decision.Refuse(Refusal.NotFound($"no rule '{FieldError.Echo(c.Id)}'")),
        LedgerCommands.FireRule c => DecideFireRule(c, rules),
        LedgerCommands.DeleteWebhook c => Webhooks.TryGetValue(c.Id, out var hook) && hook.Tenant == c.Tenant
            ? Decision.Accept(new WebhookDeleted(c.Id, c.Tenant))
            : Decision.Refuse(Refusal.NotFound($"no webhook '{FieldError.Echo(c.Id)}'")),
        LedgerCommands.StopVm c => DecideDesired(c.Tenant, c.Name, DesiredState.Stopped),
        LedgerCommands.StartVm c => DecideDesired(c.Tenant, c.Name, DesiredState.Running),
        LedgerCommands.DeleteVm c => DecideDelete(c, rules),
        LedgerCommands.ReportVm c => DecideReport(c, now),
        LedgerCommands.ConfirmDeleted c => DecideConfirmDeleted(c, rules),
        LedgerCommands.SetVmResources c => DecideSetResources(c),
        LedgerCommands.PatchVmResources c => FindVm(c.Tenant, c.Name) is { } patched
            ? DecideSetResources(new LedgerCommands.SetVmResources(c.Tenant, c.Name, c.Patch.ApplyTo(patched.Spec.EffectiveResources)))
            : DecideSetResources(new LedgerCommands.SetVmResources(c.Tenant, c.Name, c.Patch.Values)),
        LedgerCommands.SetVmLabels c => DecideSetLabels(c),
        LedgerCommands.RecomputeShares c => DecideRecomputeShares(c),
        IPlacementCommand c => DecidePlacement(c, rules, now),
        NetworkCommands.CreateNetwork c => DecideCreateNetwork(c, now),
        NetworkCommands.DeleteNetwork c => DecideDeleteNetwork(c),
        VolumeCommands.CreateVolume c => DecideCreateVolume(c, rules, now),
        VolumeCommands.DeleteVolume c => DecideDeleteVolume(c),
        VolumeCommands.ResizeVolume c => DecideResizeVolume(c, rules),
        VolumeCommands.AttachVolume c => DecideAttachVolume(c),
        VolumeCommands.DetachVolume c => DecideDetachVolume(c),
        SnapshotCommands.TakeSnapshot c => DecideTakeSnapshot(c, now),
        SnapshotCommands.DeleteSnapshot c => DecideDeleteSnapshot(c),
        SnapshotCommands.RestoreSnapshot c => DecideRestoreSnapshot(c),
        SnapshotCommands.ConfirmDiskLayer c => DecideConfirmDiskLayer(c),
        SecurityGroupCommands.CreateSecurityGroup or SecurityGroupCommands.DeleteSecurityGroup or SecurityGroupCommands.AddSecurityRule
            or SecurityGroupCommands.RemoveSecurityRule or SecurityGroupCommands.SetNicSecurityGroups => DecideSecurityGroup(command, now),
        ForwardCommands.AddForward or ForwardCommands.RemoveForward => DecideForward(command, now),
        ImageCommands.RegisterImage c => DecideRegisterImage(c, rules, now),
        ImageCommands.DeleteImage c => DecideDeleteImage(c),
        _ => throw new ArgumentException($"not a ledger command: {command.GetType().Name}", nameof(command)),
    };

    private Decision DecideRegisterHost(LedgerCommands.RegisterHost c, LedgerRules rules, DateTimeOffset now)
    {
        if (Hosts.TryGetValue(c.HostId, out var known)
            && known.Cpus == c.Cpus && known.MemoryMiB == c.MemoryMiB && known.Driver == c.Driver && known.State == HostState.Up
            && known.Address == c.Address && known.Accelerator == c.Accelerator && StoragePoolInfo.Same(known.Pools, c.Pools))
        {
            return Decision.Nothing;
        }

        var registered = new HostRegistered(c.HostId, c.Cpus, c.MemoryMiB, c.Driver, now, c.Address, c.Accelerator, c.Pools, c.Labels);
        var events = new List<ILedgerEvent> { registered };
        var state = Apply(registered);
        if (known is not null && (known.Driver != c.Driver || known.Accelerator != c.Accelerator))
        {
            // The host came back under another driver or accelerator: a VM that asked for the old one may not run here
            // any more.
            var host = state.Hosts[c.HostId];
            foreach (var vm in VmsOn(c.HostId)
                         .Where(v => v.Status != VmStatus.Deleting && !ResourceRequest.For(v.Spec).Accepts(host))
                         .OrderBy(v => v.CreatedAt).ThenBy(v => v.Id.Value))
            {
                var moved = state.Place(vm.Id, rules, failover: true);
                state = state.Apply(moved);
                events.Add(moved);
            }
        }

        return Decision.Accept([.. events, .. state.PlacePending(rules)]);
    }

    private Decision DecideLoseHost(LedgerCommands.LoseHost c, LedgerRules rules, DateTimeOffset now)
    {
        if (!Hosts.TryGetValue(c.HostId, out var host) || host.State == HostState.Down)
        {
            return Decision.Nothing;
        }

        var lost = new HostLost(c.HostId, now);
        var events = new List<ILedgerEvent> { lost };
        var state = Apply(lost);
        // Oldest first, so re-placement order is deterministic and fair when survivors run short of room.
        foreach (var vm in VmsOn(c.HostId).Where(v => v.Status != VmStatus.Deleting).OrderBy(v => v.CreatedAt).ThenBy(v => v.Id.Value))
        {
            var running = vm.Desired == DesiredState.Running && vm.Status is not (VmStatus.Failed or VmStatus.Stopped);
            ILedgerEvent evt = running && vm.Spec.RestartPolicy == RestartPolicy.Never
                ? new VmFailed(vm.Id, vm.Epoch, $"host {c.HostId} was lost and the restart policy is never")
                : state.Place(vm.Id, rules, failover: true);
            state = state.Apply(evt);
            events.Add(evt);
        }

        // VMs being deleted on the lost host are gone with it, and their snapshots with them.
        foreach (var vm in VmsOn(c.HostId).Where(v => v.Status == VmStatus.Deleting))
        {
            foreach (var evt in ReleasedWithSnapshots(vm))
            {
                state = state.Apply(evt);
                events.Add(evt);
            }
        }

        return new Decision(events, null);
    }

    private Decision DecideCreate(LedgerCommands.CreateVm c, LedgerRules rules, DateTimeOffset now)
    {
        if (DecideRetriedCreate(c, now) is { } retried)
        {
            return retried;
        }

        var errors = VmSpecValidator.Validate(c.Spec, rules.Limits, ImageNamesFor(c.Tenant, rules));
        if (errors.Count > 0)
        {
            return Decision.Refuse(Refusal.Invalid(errors));
        }

        if (FindVm(c.Tenant, c.Spec.Name) is not null)
        {
            return Decision.Refuse(Refusal.Conflict("name", $"a VM named '{c.Spec.Name}' already exists"));
        }

        if (FindTenant(c.Tenant) is not { } tenant)
        {
            return Decision.Refuse(Refusal.NotFound($"no tenant '{FieldError.Echo(c.Tenant.Value)}'"));
        }

        if (tenant.Disabled)
        {
            return Decision.Refuse(Refusal.Forbidden(new FieldError("tenant", $"tenant '{c.Tenant}' is disabled")));
        }

        if (tenant.Quota.Exceeded(UsageOf(c.Tenant), c.Spec.Vcpus, c.Spec.MemoryMiB) is { } exceeded)
        {
            return Decision.Refuse(Refusal.Forbidden(exceeded));
        }

        if (WhyNoGroup(c.Tenant, c.Spec) is { } noGroup)
        {
            return noGroup;
        }

        if (WhyNoVolumes(tenant, c.Spec) is { } noVolumes)
        {
            return noVolumes;
        }

        if (WhyNoClone(c.Tenant, c.Spec) is { } noClone)
        {
            return noClone;
        }

        var (spec, refusal) = AllocateNics(c.Tenant, c.Spec, c.NewId);
        if (refusal is not null)
        {
            return Decision.Refuse(refusal);
        }

        var requested = new VmRequested(c.NewId, c.Tenant, spec!, now, c.Idempotency);
        return Decision.Accept([requested, Apply(requested).Place(c.NewId, rules)]);
    }

    private Decision DecideCreateTenant(LedgerCommands.CreateTenant c, DateTimeOffset now)
    {
        if (!VmSpecValidator.IsValidName(c.Tenant.Value))
        {
            return Decision.Refuse(Refusal.Invalid([new FieldError("id",
                "must be 1-63 characters of lowercase letters, digits and '-', starting with a letter and not ending with '-'")]));
        }

        var errors = c.Quota.Validate().ToList();
        if (errors.Count > 0)
        {
            return Decision.Refuse(Refusal.Invalid(errors));
        }

        return FindTenant(c.Tenant) is not null
            ? Decision.Refuse(Refusal.Conflict("id", $"a tenant '{c.Tenant}' already exists"))
            : Decision.Accept(new TenantCreated(c.Tenant, c.Quota, now));
    }

    private Decision DecideUpdateTenant(LedgerCommands.UpdateTenant c)
    {
        if (!Tenants.TryGetValue(c.Tenant, out var tenant))
        {
            return c.Tenant == TenantId.System
                ? Decision.Refuse(Refusal.Invalid([new FieldError("id", "the system tenant has no quota and cannot be disabled")]))
                : Decision.Refuse(Refusal.NotFound($"no tenant '{FieldError.Echo(c.Tenant.Value)}'"));
        }

        var quota = c.Quota ?? tenant.Quota;
        var pool = c.Pool ?? tenant.Pool;
        var errors = quota.Validate().Concat(pool?.Validate() ?? []).ToList();
        if (errors.Count > 0)
        {
            return Decision.Refuse(Refusal.Invalid(errors));
        }

        var disabled = c.Disabled ?? tenant.Disabled;
        return quota == tenant.Quota && disabled == tenant.Disabled && pool == tenant.Pool
            ? Decision.Nothing
            : Decision.Accept(new TenantUpdated(c.Tenant, quota, disabled, pool));
    }

    private Decision DecideIssueKey(LedgerCommands.IssueKey c, DateTimeOffset now)
    {
        if (FindTenant(c.Tenant) is null)
        {
            return Decision.Refuse(Refusal.NotFound($"no tenant '{FieldError.Echo(c.Tenant.Value)}'"));
        }

        if (c.Role == KeyRole.Admin && c.Tenant != TenantId.System)
        {
            return Decision.Refuse(Refusal.Invalid([new FieldError("role", "admin keys belong to the system tenant; give member or read-only")]));
        }

        // Shown in listings and the CLI's tables: a control character (a trailing newline, an escape) would forge lines there.
        if (c.Name is { } keyName && (keyName.Length > 64 || keyName.Any(char.IsControl)))
        {
            return Decision.Refuse(Refusal.Invalid([new FieldError("name", "must be at most 64 characters, without control characters")]));
        }

        return Keys.ContainsKey(c.KeyId)
            ? Decision.Refuse(Refusal.Conflict("keyId", "that key id is taken"))
            : Decision.Accept(new ApiKeyIssued(c.KeyId, c.Tenant, c.Role, c.SecretHash, c.Name, now));
    }

    private Decision DecideRevokeKey(LedgerCommands.RevokeKey c, DateTimeOffset now)
    {
        if (!Keys.TryGetValue(c.KeyId, out var key) || key.Tenant != c.Tenant)
        {
            return Decision.Refuse(Refusal.NotFound($"no key '{FieldError.Echo(c.KeyId)}' in tenant '{FieldError.Echo(c.Tenant.Value)}'"));
        }

        return key.IsRevoked ? Decision.Nothing : Decision.Accept(new ApiKeyRevoked(c.KeyId, now));
    }

    private Decision DecideCreateWebhook(LedgerCommands.CreateWebhook c, DateTimeOffset now)
    {
        if (FindTenant(c.Tenant) is null)
        {
            return Decision.Refuse(Refusal.NotFound($"no tenant '{FieldError.Echo(c.Tenant.Value)}'"));
        }

        if (Webhooks.Values.Count(w => w.Tenant == c.Tenant) >= WebhookRecord.MaxPerTenant)
        {
            return Decision.Refuse(Refusal.Forbidden(new FieldError("url", $"a tenant has at most {WebhookRecord.MaxPerTenant} webhooks")));
        }

        var errors = WebhookRecord.Validate(c.Url, c.EventTypes, EventTypeNames).ToList();
        if (errors.Count > 0)
        {
            return Decision.Refuse(Refusal.Invalid(errors));
        }

        return Webhooks.ContainsKey(c.Id)
            ? Decision.Refuse(Refusal.Conflict("id", "that webhook id is taken"))
            : Decision.Accept(new WebhookCreated(c.Id, c.Tenant, c.Url, c.Secret, c.EventTypes, now));
    }

    private Decision DecideCreateRule(LedgerCommands.CreateRule c, DateTimeOffset now)
    {
        if (FindTenant(c.Tenant) is null)
        {
            return Decision.Refuse(Refusal.NotFound($"no tenant '{FieldError.Echo(c.Tenant.Value)}'"));
        }

        var errors = RuleRecord.Validate(c.Name, c.OnEvent, c.Count, c.Within, c.Schedule, c.Selector, EventTypeNames, now, c.ByAdmin).ToList();
        if (!Enum.IsDefined(c.Action))
        {
            errors.Add(new FieldError("action", "must be one of stop, start, replace"));
        }

        if (errors.Count > 0)
        {
            return Decision.Refuse(Refusal.Invalid(errors));
        }

        if (Rules.Values.Count(r => r.Tenant == c.Tenant) >= RuleRecord.MaxPerTenant)
        {
            return Decision.Refuse(Refusal.Forbidden(new FieldError("name", $"a tenant has at most {RuleRecord.MaxPerTenant} rules")));
        }

        if (Rules.Values.Any(r => r.Tenant == c.Tenant && r.Name == c.Name))
        {
            return Decision.Refuse(Refusal.Conflict("name", $"a rule named '{c.Name}' already exists"));
        }

        return Rules.ContainsKey(c.Id)
            ? Decision.Refuse(Refusal.Conflict("id", "that rule id is taken"))
            : Decision.Accept(new RuleCreated(c.Id, c.Tenant, c.Name, c.OnEvent, c.Count, c.Within, c.Schedule,
                new SortedDictionary<string, string>(c.Selector.ToDictionary(), StringComparer.Ordinal), c.Action, now));
    }

    /// <summary>What a fired rule does to each VM it applies to; a VM already as the action wants is left alone.</summary>
    private Decision DecideFireRule(LedgerCommands.FireRule c, LedgerRules rules)
    {
        if (!Rules.TryGetValue(c.RuleId, out var rule))
        {
            return Decision.Nothing; // deleted since it fired
        }

        var targets = c.VmId is { } one
            ? Vms.TryGetValue(one, out var vm) && vm.Tenant == rule.Tenant && rule.Selects(vm.Spec) ? [vm] : []
            : VmsOf(rule.Tenant).Where(v => rule.Selects(v.Spec)).OrderBy(v => v.Spec.Name, StringComparer.Ordinal).ToList();
        var events = new List<ILedgerEvent>();
        var state = this;
        foreach (var target in targets.Where(v => v.Status != VmStatus.Deleting))
        {
            ILedgerEvent? action = rule.Action switch
            {
                RuleAction.Stop when target.Desired == DesiredState.Running => new VmDesiredStateChanged(target.Id, DesiredState.Stopped),
                RuleAction.Start when target.Desired == DesiredState.Stopped || target.Status is VmStatus.Failed or VmStatus.Stopped =>
                    new VmDesiredStateChanged(target.Id, DesiredState.Running),
                RuleAction.Replace when target.Host is { } current => state.PlaceElsewhere(target.Id, current, rules),
                _ => null,
            };
            if (action is null)
            {
                continue;
            }

            var reason = action is VmPending pending ? $"{c.Reason}; {pending.Reason}" : c.Reason;
            if (action is VmPending)
            {
                // Nowhere else to go: say so, and leave it where it runs.
                var fired = new RuleFired(target.Id, rule.Id, rule.Name, rule.Action, reason);
                events.Add(fired);
                state = state.Apply(fired);
                continue;
            }

            foreach (var evt in new[] { new RuleFired(target.Id, rule.Id, rule.Name, rule.Action, reason), action })
            {
                events.Add(evt);
                state = state.Apply(evt);
            }
        }

        return new Decision(events, null);
    }

    /// <summary>The VM on the best host other than <paramref name="avoid"/>, or Pending (not applied) saying why not.</summary>
    private ILedgerEvent PlaceElsewhere(VmId vmId, HostId avoid, LedgerRules rules)
    {
        var vm = Vms[vmId];
        var request = ResourceRequest.For(vm.Spec);
        var constraints = ConstraintsFor(vm, rules);
        var (host, pool) = ChooseHostWithDisk(vm, request, rules, constraints, avoid);
        return host is null
            ? new VmPending(vmId, $"no other host has room ({ExplainNoPlace(vm, request, rules, constraints, avoid)})")
            : new VmPlaced(vmId, host.Id, vm.Epoch.Next(), pool);
    }

    /// <summary>The names of the ledger's event types (what webhooks and streams filter on).</summary>
    public static readonly IReadOnlySet<string> EventTypeNames = typeof(LedgerEvents).GetNestedTypes()
        .Where(t => typeof(ILedgerEvent).IsAssignableFrom(t)).Select(t => t.Name).ToHashSet(StringComparer.Ordinal);

    /// <summary>Why the tenant's VM can't be changed: missing (404, like another tenant's) or being deleted (409).</summary>
    private (VmRecord? Vm, Decision? Refused) Changeable(TenantId tenant, string name) => FindVm(tenant, name) switch
    {
        null => (null, Decision.Refuse(Refusal.NotFound($"no VM named '{FieldError.Echo(name)}'"))),
        { Status: VmStatus.Deleting } vm => (vm, Decision.Refuse(Refusal.Conflict("name", $"VM '{FieldError.Echo(name)}' is being deleted"))),
        var vm => (vm, null),
    };

    private Decision DecideDesired(TenantId tenant, string name, DesiredState desired)
    {
        var (found, refused) = Changeable(tenant, name);
        if (refused is not null)
        {
            return refused;
        }

        var vm = found!;

        // Starting a VM that is down (crashed for good, or powered off by its guest) is the way to bring it back,
        // as `docker start` is, even though the tenant never asked for it to stop.
        var alreadyThere = vm.Desired == desired
            && !(desired == DesiredState.Running && vm.Status is VmStatus.Failed or VmStatus.Stopped);
        return alreadyThere ? Decision.Nothing : Decision.Accept(new VmDesiredStateChanged(vm.Id, desired));
    }

    private Decision DecideDelete(LedgerCommands.DeleteVm c, LedgerRules rules)
    {
        var vm = FindVm(c.Tenant, c.Name);
        if (vm is null)
        {
            return Decision.Refuse(Refusal.NotFound($"no VM named '{FieldError.Echo(c.Name)}'"));
        }

        if (vm.Status == VmStatus.Deleting)
        {
            return Decision.Nothing;
        }

        if (WhyKeepSnapshots(vm) is { } keep)
        {
            return keep;
        }

        var deleteRequested = new VmDeleteRequested(vm.Id);
        ILedgerEvent[] volumes = c.WithVolumes ? [.. VolumesDeletedWith(vm)] : [];
        if (vm.Host is null)
        {
            // On no host: nothing runs anywhere, release at once.
            return Decision.Accept([deleteRequested, .. volumes, .. ReleasedWithSnapshots(vm)]);
        }

        // Its snapshots are the layers under its disk, which its QEMU holds open until its host has stopped it: they go
        // with its release, once the host confirms (or is lost), not before (an rbd image with a watcher cannot go).
        return Decision.Accept([deleteRequested, .. volumes]);
    }

    private Decision DecideReport(LedgerCommands.ReportVm c, DateTimeOffset now)
    {
        if (!Vms.TryGetValue(c.VmId, out var vm) || vm.Epoch != c.Epoch || vm.Status == VmStatus.Deleting)
        {
            return Decision.Nothing;
        }

        ILedgerEvent? evt = c.Status switch
        {
            VmStatus.Running when vm.Status is not (VmStatus.Running or VmStatus.Ready) || vm.Pid != c.Pid =>
                new VmStarted(vm.Id, c.Epoch, c.Pid ?? 0),
            VmStatus.Ready when vm.Status != VmStatus.Ready => new VmReady(vm.Id, c.Epoch, now),
            VmStatus.Restarting => new VmRestarting(vm.Id, c.Epoch, c.Attempt ?? vm.Restarts + 1, c.Reason ?? "exited"),
            VmStatus.Stopped when vm.Status != VmStatus.Stopped => new VmStopped(vm.Id, c.Epoch, c.Reason ?? "stopped"),
            VmStatus.Failed when vm.Status != VmStatus.Failed || vm.Reason != c.Reason =>
                new VmFailed(vm.Id, c.Epoch, c.Reason ?? "failed"),
            _ => null,
        };
        return evt is null ? Decision.Nothing : Decision.Accept(evt);
    }

    private Decision DecideConfirmDeleted(LedgerCommands.ConfirmDeleted c, LedgerRules rules)
    {
        if (!Vms.TryGetValue(c.VmId, out var vm) || vm.Status != VmStatus.Deleting)
        {
            return Decision.Nothing;
        }

        var released = ReleasedWithSnapshots(vm);
        var state = this;
        foreach (var evt in released)
        {
            state = state.Apply(evt);
        }

        return Decision.Accept([.. released, .. state.PlacePending(rules)]);
    }

    private Decision DecideSetResources(LedgerCommands.SetVmResources c)
    {
        var (found, refused) = Changeable(c.Tenant, c.Name);
        if (refused is not null)
        {
            return refused;
        }

        var vm = found!;

        var errors = c.Resources.Validate(vm.Spec.Vcpus, vm.Spec.MemoryMiB);
        if (errors.Count > 0)
        {
            return Decision.Refuse(Refusal.Invalid(errors));
        }

        if (c.Resources == vm.Spec.EffectiveResources)
        {
            return Decision.Nothing;
        }

        if (vm.Host is { } hostId && Hosts.TryGetValue(hostId, out var host))
        {
            var old = vm.Spec.EffectiveResources;
            var cpuFree = host.CpuMillicores - host.ReservedCpuMillicores + old.CpuReservationMillicores;
            if (c.Resources.CpuReservationMillicores > cpuFree)
            {
                return Decision.Refuse(Refusal.Conflict("cpuReservationMillicores",
                    $"host {hostId} has {cpuFree} millicores left to reserve, the VM asks for {c.Resources.CpuReservationMillicores}"));
            }

            var memoryFree = host.MemoryMiB - host.ReservedMemoryMiB + old.MemoryReservationMiB;
            if (c.Resources.MemoryReservationMiB > memoryFree)
            {
                return Decision.Refuse(Refusal.Conflict("memoryReservationMiB",
                    $"host {hostId} has {memoryFree} MiB left to reserve, the VM asks for {c.Resources.MemoryReservationMiB}"));
            }
        }

        return Decision.Accept(new VmResourcesChanged(vm.Id, c.Resources));
    }

    private Decision DecideSetLabels(LedgerCommands.SetVmLabels c)
    {
        var (found, refused) = Changeable(c.Tenant, c.Name);
        if (refused is not null)
        {
            return refused;
        }

        var vm = found!;

        var errors = VmLabels.Validate(c.Labels).ToList();
        if (errors.Count > 0)
        {
            return Decision.Refuse(Refusal.Invalid(errors));
        }

        return VmLabels.Same(vm.Spec.EffectiveLabels, c.Labels)
            ? Decision.Nothing
            : Decision.Accept(new VmLabelsChanged(vm.Id, new SortedDictionary<string, string>(c.Labels.ToDictionary(), StringComparer.Ordinal)));
    }

    private Decision DecideRecomputeShares(LedgerCommands.RecomputeShares c)
    {
        if (!Hosts.TryGetValue(c.HostId, out var host) || host.State == HostState.Down)
        {
            return Decision.Nothing;
        }

        // VMs that hold a running process on the host; the others are entitled to nothing.
        var running = VmsOn(c.HostId).Where(v => v.Status is VmStatus.Starting or VmStatus.Running or VmStatus.Ready)
            .OrderBy(v => v.Id.Value).ToList();
        var demand = c.Demand.ToDictionary(d => d.VmId, d => d.Millicores);
        var entitled = HostShares.Divide(host.CpuMillicores, running.Select(HostShares.From).ToList(),
            id => demand.TryGetValue(id, out var m) ? m : null, t => Tenants.GetValueOrDefault(t)?.Pool);
        var changed = new List<ILedgerEvent>();
        foreach (var vm in VmsOn(c.HostId).OrderBy(v => v.Id.Value))
        {
            long? now = entitled.TryGetValue(vm.Id, out var m) ? m : null;
            var moved = (vm.EntitledCpuMillicores, now) switch
            {
                (null, null) => false,
                ({ } before, { } after) => Math.Abs(before - after) > c.ToleranceMillicores,
                _ => true,
            };
            if (moved)
            {
                changed.Add(new SharesChanged(vm.Id, c.HostId, now));
            }
        }

        return new Decision(changed, null);
    }

    /// <summary>A placement for one VM: on the best host, or Pending with the reason.</summary>
    /// <param name="failover">re-placing a lost host's VM: the HA headroom exists for exactly this, so it does not apply.</param>
    private ILedgerEvent Place(VmId vmId, LedgerRules rules, bool failover = false)
    {
        var vm = Vms[vmId];
        var request = ResourceRequest.For(vm.Spec);
        var constraints = ConstraintsFor(vm, rules);
        // The index orders hosts by allocation only; a VM with a reservation is rare enough to scan for.
        var host = request.HasReservation
            ? constraints.ChooseHost(Hosts.Values, request, rules.Placement)
            : Capacity.ChooseHost(request, rules.Placement, constraints);
        // The index knows no disks: a host it picks that cannot hold the VM's disk sends the choice to a scan that does.
        string? pool = null;
        if (host is not null && (!TryDiskPool(host, vm, out pool) || !VolumesAllow(host, vm)))
        {
            (host, pool) = ChooseHostWithDisk(vm, request, rules, constraints);
        }

        if (host is null)
        {
            return new VmPending(vmId, ExplainNoPlace(vm, request, rules, constraints));
        }

        // Hosts.Values is enumerated only when a headroom is configured: a copy per decision would cost a scan.
        if (!failover && !Placement.Placement.KeepsHeadroom(Hosts.Values, host, request, rules.Placement))
        {
            return new VmPending(vmId,
                $"placing it on {host.Id} would leave too little room to restart the VMs of the {rules.Placement.HaHeadroomHosts} fullest host(s) " +
                "elsewhere (orchestrator.scheduler.ha-headroom-hosts)");
        }

        return new VmPlaced(vmId, host.Id, vm.Epoch.Next(), pool);
    }

    /// <summary>Places waiting VMs, oldest first, for as long as they fit.</summary>
    private IEnumerable<ILedgerEvent> PlacePending(LedgerRules rules)
    {
        var state = this;
        foreach (var vm in VmLookup.Pending)
        {
            if (state.Place(vm.Id, rules) is VmPlaced placed)
            {
                state = state.Apply(placed);
                yield return placed;
            }
        }
    }

    public LedgerState Apply(ILedgerEvent evt)
    {
        if (_applied is { } applied && ReferenceEquals(applied.From, this) && ReferenceEquals(applied.Event, evt))
        {
            _applied = null; // taken once: the caller moves on to the next state, and an old state keeps no chain of successors
            return applied.Next;
        }

        var next = WithGroupIndex(WithVmIndex(WithCapacityIndex(WithIdempotency(evt, ApplySnapshots(evt, ApplyVolumes(evt, ApplyNetworks(evt, ApplyCore(evt))))), evt), evt), evt)
            .ApplySecurityGroups(evt).ApplyForwards(evt).ApplyImages(evt);
        if (!ReferenceEquals(next, this))
        {
            next._applied = null; // a `with` copied this state's memo, which is about this state, not the next
        }

        _applied = new Applied(this, evt, next);
        return next;
    }

    // A decision applies its own events to scratch states as it decides (a create applies its request, then places the
    // VM against that), and the caller then applies the very same event objects to this state: the last event applied
    // here is kept with its result, so that the caller's Apply is a lookup rather than the same work twice. Apply is a
    // function of the state and the event, so the memo changes no result; it is only consulted for the same event on the
    // very state it was made on (a `with` copies the field into another state, which must not answer from it).
    private sealed record Applied(LedgerState From, ILedgerEvent Event, LedgerState Next);

    private Applied? _applied;

    private LedgerState ApplyCore(ILedgerEvent evt) => evt switch
    {
        HostRegistered e => this with
        {
            Hosts = Hosts.SetItem(e.HostId, Hosts.TryGetValue(e.HostId, out var h)
                ? h with { Cpus = e.Cpus, MemoryMiB = e.MemoryMiB, Driver = e.Driver, State = HostState.Up, Address = e.Address, Accelerator = e.Accelerator, Pools = e.Pools }
                : new HostRecord(e.HostId, e.Cpus, e.MemoryMiB, e.Driver, HostState.Up, 0, 0, 0, e.Address, Accelerator: e.Accelerator,
                    Pools: e.Pools, Labels: e.Labels is { Count: > 0 } labels ? labels : null)),
        },
        VmRequested e => this with
        {
            Vms = Vms.Add(e.VmId, new VmRecord(e.VmId, e.Tenant, e.Spec, DesiredState.Running, VmStatus.Pending,
                null, null, Epoch.Zero, null, 0, e.At, null)),
            Names = WithName(Names, e.Tenant, e.Spec.Name, e.VmId),
            Usage = Usage.SetItem(e.Tenant, UsageOf(e.Tenant).Add(1, e.Spec.Vcpus, e.Spec.MemoryMiB)),
            StorageUsage = Charge(StorageUsage, e.Tenant, e.Spec.EffectiveDiskGiB),
        },
        TenantCreated e => this with { Tenants = Tenants.SetItem(e.Tenant, new TenantRecord(e.Tenant, e.Quota, false, e.At)) },
        TenantUpdated e => this with
        {
            Tenants = Tenants.SetItem(e.Tenant, Tenants[e.Tenant] with { Quota = e.Quota, Disabled = e.Disabled, Pool = e.Pool }),
        },
        ApiKeyIssued e => this with { Keys = Keys.SetItem(e.KeyId, new ApiKeyRecord(e.KeyId, e.Tenant, e.Role, e.SecretHash, e.Name, e.At, null)) },
        WebhookCreated e => this with { Webhooks = Webhooks.SetItem(e.Id, new WebhookRecord(e.Id, e.Tenant, e.Url, e.Secret, e.EventTypes, e.At)) },
        WebhookDeleted e => this with { Webhooks = Webhooks.Remove(e.Id) },
        RuleCreated e => this with
        {
            Rules = Rules.SetItem(e.Id, new RuleRecord(e.Id, e.Tenant, e.Name, e.OnEvent, e.Count, e.Within, e.Schedule, e.Selector, e.Action, e.At)),
        },
        RuleDeleted e => this with { Rules = Rules.Remove(e.Id) },
        RuleFired or NetworkEvents.NetworkCreated or NetworkEvents.NetworkDeleted => this, // RuleFired: its actions' own events follow; networks: ApplyNetworks
        VolumeEvents.VolumeCreated or VolumeEvents.VolumeDeleted or VolumeEvents.VolumeResized or VolumeEvents.VolumeAttached
            or VolumeEvents.VolumeDetached => this, // ApplyVolumes
        ISnapshotEvent => this, // ApplySnapshots
        SecurityGroupEvents.SecurityGroupCreated or SecurityGroupEvents.SecurityGroupDeleted or SecurityGroupEvents.SecurityRuleAdded
            or SecurityGroupEvents.SecurityRuleRemoved or SecurityGroupEvents.NicSecurityGroupsChanged => this, // ApplySecurityGroups
        ForwardEvents.ForwardAdded or ForwardEvents.ForwardRemoved => this, // ApplyForwards
        ImageEvents.ImageRegistered or ImageEvents.ImageDeleted => this, // ApplyImages
        ApiKeyRevoked e => this with { Keys = Keys.SetItem(e.KeyId, Keys[e.KeyId] with { RevokedAt = e.At }) },
        VmPending e => MoveAllocation(e.VmId, null, e, static (vm, host, entitled, evt) => vm with
        {
            Host = host, EntitledCpuMillicores = entitled, Status = VmStatus.Pending, Reason = evt.Reason, Pid = null,
        }),
        HostLost e => this with { Hosts = Hosts.SetItem(e.HostId, Hosts[e.HostId] with { State = HostState.Down }) },
        VmPlaced e => MoveAllocation(e.VmId, e.HostId, e, static (vm, host, entitled, evt) => vm with
            {
                Host = host, EntitledCpuMillicores = entitled, Epoch = evt.Epoch, Pid = null, Reason = null,
                // A VM that is down (gave up, or powered off by its guest) moves with its host's loss but stays down.
                Status = vm.Status is VmStatus.Failed or VmStatus.Stopped ? vm.Status
                    : vm.Desired == DesiredState.Running ? VmStatus.Starting : VmStatus.Stopped,
            }).WithDiskPlaced(e),
        VmStarted e => UpdateVm(e, static (vm, e) => vm with { Status = VmStatus.Running, Pid = e.Pid, Reason = null }),
        VmReady e => UpdateVm(e, static (vm, e) => vm with { Status = VmStatus.Ready, ReadyAt = e.At, Reason = null }),
        VmRestarting e => UpdateVm(e, static (vm, e) => vm with
        {
            Status = VmStatus.Restarting, Restarts = vm.Restarts + 1, Reason = e.Reason, Pid = null, ReadyAt = null,
        }),
        VmStopped e => UpdateVm(e, static (vm, e) => vm with { Status = VmStatus.Stopped, Reason = e.Reason, Pid = null, ReadyAt = null }),
        VmFailed e => UpdateVm(e, static (vm, e) => vm with { Status = VmStatus.Failed, Reason = e.Reason, Pid = null, ReadyAt = null }),
        VmDesiredStateChanged e => UpdateVm(e, static (vm, e) => vm with
        {
            Desired = e.Desired,
            Status = e.Desired == DesiredState.Running
                ? (vm.Host is null ? VmStatus.Pending : VmStatus.Starting)
                : VmStatus.Stopping,
            Reason = null,
        }),
        VmDeleteRequested e => UpdateVm(e, static (vm, e) => vm with { Status = VmStatus.Deleting, Reason = null }),
        VmResourcesChanged e => ChangeResources(e),
        VmLabelsChanged e => UpdateVm(e, static (vm, e) => vm with { Spec = vm.Spec with { Labels = e.Labels } }),
        SharesChanged e => UpdateVm(e, static (vm, e) => vm.Host == e.HostId ? vm with { EntitledCpuMillicores = e.EntitledMillicores } : vm),
        VmReleased e => Release(e.VmId),
        IPlacementEvent e => ApplyPlacement(e),
        _ => throw new ArgumentException($"unknown ledger event {evt.GetType().Name}", nameof(evt)),
    };

    private LedgerState ChangeResources(VmResourcesChanged e)
    {
        if (!Vms.TryGetValue(e.VmId, out var vm))
        {
            return this;
        }

        // Off and back on its host, so the host's reservations follow the new figures.
        var host = vm.Host;
        var state = MoveAllocation(e.VmId, null);
        state = state with { Vms = state.Vms.SetItem(e.VmId, state.Vms[e.VmId] with { Spec = vm.Spec with { Resources = e.Resources } }) };
        return state.MoveAllocation(e.VmId, host);
    }

    /// <param name="change">the record after the event (a static lambda: an Apply allocates no closure, and none is made
    /// for the other events either: a lambda that captured an arm's event made every ApplyCore allocate one).</param>
    private LedgerState UpdateVm<TEvent>(TEvent evt, Func<VmRecord, TEvent, VmRecord> change) where TEvent : IVmLedgerEvent =>
        Vms.TryGetValue(evt.VmId, out var vm) ? this with { Vms = Vms.SetItem(evt.VmId, change(vm, evt)) } : this;

    /// <summary>Moves a VM's resources from its current host (if any) to <paramref name="to"/> (if any).</summary>
    private LedgerState MoveAllocation(VmId id, HostId? to) =>
        MoveAllocation(id, to, 0, static (vm, host, entitled, _) => vm with { Host = host, EntitledCpuMillicores = entitled });

    /// <summary>
    /// The VM gone from the ledger with all it held: its host's allocation, its name, its tenant's usage and storage, its
    /// disk's room in its pool. One copy of the state for them all (a release follows every delete).
    /// </summary>
    private LedgerState Release(VmId id)
    {
        var gone = Vms[id];
        return (this with
        {
            Hosts = HostsAfterMove(gone, null),
            Vms = Vms.Remove(id),
            Names = WithoutName(Names, gone.Tenant, gone.Spec.Name),
            Usage = Usage.SetItem(gone.Tenant, UsageOf(gone.Tenant).Add(-1, -gone.Spec.Vcpus, -gone.Spec.MemoryMiB)),
            StorageUsage = Charge(StorageUsage, gone.Tenant, -gone.Spec.EffectiveDiskGiB),
        }).WithDiskReleased(gone);
    }

    /// <summary>Moves a VM's resources, and changes its record with the move: one copy of the record, one update of the VMs.</summary>
    /// <param name="moved">the record after the move from the record before, its new host and entitlement, and the event
    /// (a static lambda: a decision allocates no closure for it).</param>
    private LedgerState MoveAllocation<TEvent>(VmId id, HostId? to, TEvent evt, Func<VmRecord, HostId?, long?, TEvent, VmRecord> moved)
    {
        var vm = Vms[id];
        // A VM that moves (or stops holding a host) has no entitlement until its new host's next recompute.
        var entitled = to == vm.Host ? vm.EntitledCpuMillicores : null;
        return this with { Hosts = HostsAfterMove(vm, to), Vms = Vms.SetItem(id, moved(vm, to, entitled, evt)) };
    }

    private PersistentHashMap<HostId, HostRecord> HostsAfterMove(VmRecord vm, HostId? to)
    {
        var hosts = Hosts;
        var resources = vm.Spec.EffectiveResources;
        if (vm.Host is { } from && hosts.TryGetValue(from, out var old))
        {
            hosts = hosts.SetItem(from, old with
            {
                AllocatedVcpus = old.AllocatedVcpus - vm.Spec.Vcpus,
                AllocatedMemoryMiB = old.AllocatedMemoryMiB - vm.Spec.MemoryMiB,
                VmCount = old.VmCount - 1,
                ReservedCpuMillicores = old.ReservedCpuMillicores - resources.CpuReservationMillicores,
                ReservedMemoryMiB = old.ReservedMemoryMiB - resources.MemoryReservationMiB,
            });
        }

        if (to is { } target && hosts.TryGetValue(target, out var host))
        {
            hosts = hosts.SetItem(target, host with
            {
                AllocatedVcpus = host.AllocatedVcpus + vm.Spec.Vcpus,
                AllocatedMemoryMiB = host.AllocatedMemoryMiB + vm.Spec.MemoryMiB,
                VmCount = host.VmCount + 1,
                ReservedCpuMillicores = host.ReservedCpuMillicores + resources.CpuReservationMillicores,
                ReservedMemoryMiB = host.ReservedMemoryMiB + resources.MemoryReservationMiB,
            });
        }

        return hosts;
    }

    /// <summary>
    /// An index derived from one of the state's maps, kept with the very map it was made from: a `with` copies it, and
    /// a state whose map is another (changed without Apply keeping the index, or come from elsewhere) builds it anew.
    /// </summary>
    private sealed record Derived<TSource, TIndex>(TSource Source, TIndex Index) where TSource : class;

    private static TIndex Current<TSource, TIndex>(ref Derived<TSource, TIndex>? cache, TSource source, Func<TSource, TIndex> build)
        where TSource : class
    {
        var current = cache;
        if (current is null || !ReferenceEquals(current.Source, source))
        {
            current = new Derived<TSource, TIndex>(source, build(source));
            cache = current;
        }

        return current.Index;
    }

    // The free-capacity index of the Up hosts (Placement/CapacityIndex.cs): Apply updates it for the hosts an event
    // touched; a state whose Hosts came from elsewhere rebuilds it once.
    private Derived<PersistentHashMap<HostId, HostRecord>, CapacityIndex>? _capacity;

    internal CapacityIndex Capacity => Current(ref _capacity, Hosts, hosts => CapacityIndex.Build(hosts.Values));

    private LedgerState WithCapacityIndex(LedgerState next, ILedgerEvent evt)
    {
        if (ReferenceEquals(next.Hosts, Hosts))
        {
            return next; // unchanged hosts keep the index
        }

        HostId? vmHostBefore = null, vmHostAfter = null, eventHost = evt switch
        {
            HostRegistered e => e.HostId,
            HostLost e => e.HostId,
            VmPlaced e => e.HostId,
            PlacementEvents.HostLabelsChanged e => e.HostId,
            _ => null,
        };
        if (evt is IVmLedgerEvent vmEvent)
        {
            vmHostBefore = Vms.GetValueOrDefault(vmEvent.VmId)?.Host;
            vmHostAfter = next.Vms.GetValueOrDefault(vmEvent.VmId)?.Host;
        }
        else if (eventHost is null)
        {
            return next; // an event this index does not know: rebuilt when next needed
        }

        var index = Capacity; // built here once (after a snapshot, say), then kept up to date
        index = ReplaceHost(index, next, eventHost);
        index = vmHostBefore == eventHost ? index : ReplaceHost(index, next, vmHostBefore);
        index = vmHostAfter == eventHost || vmHostAfter == vmHostBefore ? index : ReplaceHost(index, next, vmHostAfter);
        next._capacity = new(next.Hosts, index);
        return next;
    }

    private CapacityIndex ReplaceHost(CapacityIndex index, LedgerState next, HostId? id) =>
        id is not { } host
            ? index
            : index.Replace(Hosts.GetValueOrDefault(host) is { State: HostState.Up } before ? before : null, next.Hosts.GetValueOrDefault(host));

    // The VMs by host and pending (VmIndex.cs). Unlike the capacity index it is built only when first asked
    // for: a recovery replaying millions of events never pays for it per event.
    private Derived<PersistentHashMap<VmId, VmRecord>, VmIndex>? _vmIndex;

    internal VmIndex VmLookup => Current(ref _vmIndex, Vms, vms => VmIndex.Build(vms.Values));

    private LedgerState WithVmIndex(LedgerState next, ILedgerEvent evt)
    {
        var cache = _vmIndex;
        if (ReferenceEquals(next.Vms, Vms) || cache is null || !ReferenceEquals(cache.Source, Vms))
        {
            return next; // unchanged VMs keep the index (a `with` copies it); a stale or absent one is built when asked for
        }

        next._vmIndex = evt is IVmLedgerEvent vmEvent
            ? new(next.Vms, cache.Index.Replace(Vms.GetValueOrDefault(vmEvent.VmId), next.Vms.GetValueOrDefault(vmEvent.VmId)))
            : null;
        return next;
    }
}
