// Volumes in the ledger (issue 18): a tenant's disks apart from its VMs, charged to their pool and to the tenant's storage
// quota in the same decision that creates or grows them, attached to at most one VM, which they pin to a local pool's host.
using System.Collections.Immutable;
using Orchestrator.Domain.Storage;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;
using static Orchestrator.Domain.Ledger.LedgerEvents;
using static Orchestrator.Domain.Ledger.VolumeEvents;

namespace Orchestrator.Domain.Ledger;

public sealed partial record LedgerState
{
    /// <summary>Volumes by id.</summary>
    public ImmutableDictionary<string, VolumeRecord> Volumes { get; init; } = ImmutableDictionary<string, VolumeRecord>.Empty;

    /// <summary>GiB of storage each tenant holds: its VMs' disks (as asked for, placed or not), its volumes and snapshots.</summary>
    public ImmutableDictionary<TenantId, long> StorageUsage { get; init; } = ImmutableDictionary<TenantId, long>.Empty;

    /// <summary>
    /// GiB of storage charged to the tenant's quota: <see cref="StorageUsage"/> and its private imported images' bytes on
    /// disk, rounded up to whole GiB together (not per image: 64 small images weigh what they weigh).
    /// </summary>
    public long StorageUsedGiB(TenantId tenant) => StorageUsage.GetValueOrDefault(tenant) + ImageRecord.GiBHolding(ImageBytesOf(tenant));

    public VolumeRecord? FindVolume(TenantId tenant, string name) =>
        Volumes.Values.FirstOrDefault(v => v.Tenant == tenant && v.Name == name);

    public IEnumerable<VolumeRecord> VolumesOf(TenantId tenant) =>
        Volumes.Values.Where(v => v.Tenant == tenant).OrderBy(v => v.Name, StringComparer.Ordinal);

    /// <summary>The volumes attached to the VM, by name.</summary>
    public IReadOnlyList<VolumeRecord> VolumesOn(VmId vm) =>
        Volumes.IsEmpty ? [] : Volumes.Values.Where(v => v.AttachedTo == vm).OrderBy(v => v.Name, StringComparer.Ordinal).ToList();

    /// <summary>What the VM's host opens besides its disk; null for a VM without volumes.</summary>
    private IReadOnlyList<VolumeAssignment>? VolumeAssignmentsOf(VmRecord vm) =>
        VolumesOn(vm.Id) is { Count: > 0 } volumes ? volumes.Select(v => new VolumeAssignment(v.Id, v.Pool, v.SizeGiB)).ToList() : null;

    /// <summary>Whether <paramref name="host"/> reaches every volume attached to the VM: its own pool's, or a shared pool it has.</summary>
    private bool VolumesAllow(HostRecord host, VmRecord vm) =>
        Volumes.IsEmpty || VolumesOn(vm.Id).All(v => Reaches(host, v));

    private static bool Reaches(HostRecord host, VolumeRecord volume) =>
        volume.Host is { } pinned ? pinned == host.Id : host.EffectivePools.Any(p => p.Shared && p.Id == volume.Pool);

    /// <summary>Why no host takes the VM for its volumes alone (a local pool's host lost or not Up); null when they allow some.</summary>
    private string? ExplainVolumesPin(VmRecord vm, HostId? avoid)
    {
        foreach (var volume in VolumesOn(vm.Id))
        {
            if (volume.Host is { } pinned && (pinned == avoid || !Hosts.TryGetValue(pinned, out var own) || own.State != HostState.Up))
            {
                var state = Hosts.GetValueOrDefault(pinned) is { State: not HostState.Down } known && pinned != avoid
                    ? known.State.ToString().ToLowerInvariant() + " "
                    : pinned == avoid ? "" : "lost ";
                return $"its volume '{volume.Name}' is on {state}host {pinned}'s local pool '{volume.Pool}'";
            }
        }

        return null;
    }

    private Decision DecideCreateVolume(VolumeCommands.CreateVolume c, LedgerRules rules, DateTimeOffset now)
    {
        var errors = new List<FieldError>();
        if (!VmSpecValidator.IsValidName(c.Name))
        {
            errors.Add(new FieldError("name", "must be 1-63 characters of lowercase letters, digits and '-', starting with a letter and not ending with '-'"));
        }

        if (SizeError(c.SizeGiB, rules) is { } size)
        {
            errors.Add(size);
        }

        if (!VolumeRecord.IsValidId(c.Id))
        {
            errors.Add(new FieldError("id", "must be 32 lowercase hex digits"));
        }

        if (errors.Count > 0)
        {
            return Decision.Refuse(Refusal.Invalid(errors));
        }

        if (WhyNoNew(c.Tenant, "volume", c.Name, c.Id, FindVolume(c.Tenant, c.Name) is not null, Volumes.ContainsKey(c.Id),
                VolumesOf(c.Tenant).Count(), VolumeRecord.MaxPerTenant, out var tenant) is { } refused)
        {
            return refused;
        }

        if ((tenant.Quota.VolumesExceeded(VolumesOf(c.Tenant).Count()) ?? tenant.Quota.StorageExceeded(StorageUsedGiB(c.Tenant), c.SizeGiB, "sizeGiB"))
            is { } exceeded)
        {
            return Decision.Refuse(Refusal.Forbidden(exceeded));
        }

        var (key, refusal) = ChooseVolumePool(c.Pool, c.SizeGiB);
        return refusal is not null
            ? Decision.Refuse(refusal)
            : Decision.Accept(new VolumeCreated(c.Id, c.Tenant, c.Name, c.SizeGiB, key.Pool, key.Host, now));
    }

    private static FieldError? SizeError(int sizeGiB, LedgerRules rules) =>
        sizeGiB < 1 || sizeGiB > rules.Limits.MaxDiskGiB
            ? new FieldError("sizeGiB", $"must be between 1 and {rules.Limits.MaxDiskGiB} GiB, was {sizeGiB}")
            : null;

    /// <summary>
    /// The pool a new volume goes to: the one named (a host's own pool: that host's with the most room), else shared first
    /// (the volume can follow its VM), then the emptiest, as a VM's disk is placed. Only Up hosts' pools count.
    /// </summary>
    private (PoolKey Key, Refusal? Refusal) ChooseVolumePool(string? named, int sizeGiB)
    {
        var pools = Hosts.Values.Where(h => h.State == HostState.Up)
            .SelectMany(h => h.EffectivePools.Select(p => (Key: PoolKey.Of(h.Id, p), Pool: p)))
            .DistinctBy(p => p.Key)
            .Where(p => named is null || p.Pool.Id == named)
            .ToList();
        if (pools.Count == 0)
        {
            return (default, named is null
                ? Refusal.Conflict("pool", "no host that is up offers a storage pool (orchestrator.storage.pools)")
                : Refusal.Invalid([new FieldError("pool", $"no host that is up offers a storage pool '{FieldError.Echo(named)}'")]));
        }

        var free = pools.Select(p => (p.Key, p.Pool, Free: p.Pool.PromisableGiB - DiskAllocations.GetValueOrDefault(p.Key))).ToList();
        var best = free.Where(p => p.Free >= sizeGiB)
            .OrderByDescending(p => p.Pool.Shared).ThenByDescending(p => p.Free).ThenBy(p => p.Key.Host?.Value, StringComparer.Ordinal)
            .ThenBy(p => p.Pool.Id, StringComparer.Ordinal)
            .FirstOrDefault();
        return best.Pool is not null
            ? (best.Key, null)
            : (default, Refusal.Conflict("sizeGiB", $"no storage pool has {sizeGiB} GiB free (" +
                string.Join(", ", free.OrderByDescending(p => p.Free).Take(5)
                    .Select(p => $"{(p.Key.Host is { } h ? $"{h}/" : "")}{p.Pool.Id} {Math.Max(0, p.Free)} GiB free")) + ")"));
    }

    private Decision DecideDeleteVolume(VolumeCommands.DeleteVolume c)
    {
        if (FindVolume(c.Tenant, c.Name) is not { } volume)
        {
            return Decision.Refuse(Refusal.NotFound($"no volume '{FieldError.Echo(c.Name)}'"));
        }

        return volume.AttachedTo is { } vm && Vms.TryGetValue(vm, out var user)
            ? Decision.Refuse(Refusal.Conflict("name", $"volume '{c.Name}' is attached to VM '{user.Spec.Name}'; detach it first"))
            : Decision.Accept(new VolumeDeleted(volume.Id, volume.Tenant));
    }

    private Decision DecideResizeVolume(VolumeCommands.ResizeVolume c, LedgerRules rules)
    {
        if (FindVolume(c.Tenant, c.Name) is not { } volume)
        {
            return Decision.Refuse(Refusal.NotFound($"no volume '{FieldError.Echo(c.Name)}'"));
        }

        if (SizeError(c.SizeGiB, rules) is { } size)
        {
            return Decision.Refuse(Refusal.Invalid([size]));
        }

        if (c.SizeGiB < volume.SizeGiB)
        {
            return Decision.Refuse(Refusal.Invalid([new FieldError("sizeGiB",
                $"a volume only grows: '{c.Name}' has {volume.SizeGiB} GiB, {c.SizeGiB} asked (shrinking would cut its data)")]));
        }

        if (c.SizeGiB == volume.SizeGiB)
        {
            return Decision.Nothing;
        }

        var more = c.SizeGiB - volume.SizeGiB;
        if (FindTenant(c.Tenant)?.Quota.StorageExceeded(StorageUsedGiB(c.Tenant), more, "sizeGiB") is { } exceeded)
        {
            return Decision.Refuse(Refusal.Forbidden(exceeded));
        }

        var promisable = Hosts.Values.SelectMany(h => h.EffectivePools.Where(p => PoolKey.Of(h.Id, p) == volume.Key))
            .Select(p => p.PromisableGiB).DefaultIfEmpty(long.MaxValue).Max();
        var free = promisable - DiskAllocations.GetValueOrDefault(volume.Key);
        return more > free
            ? Decision.Refuse(Refusal.Conflict("sizeGiB", $"the volume's {volume.Where} has {Math.Max(0, free)} GiB free, {more} more asked"))
            : Decision.Accept(new VolumeResized(volume.Id, c.SizeGiB));
    }

    private Decision DecideAttachVolume(VolumeCommands.AttachVolume c)
    {
        var (found, refused) = Changeable(c.Tenant, c.Vm);
        if (refused is not null)
        {
            return refused;
        }

        var vm = found!;
        if (FindVolume(c.Tenant, c.Volume) is not { } volume)
        {
            return Decision.Refuse(Refusal.NotFound($"no volume '{FieldError.Echo(c.Volume)}'"));
        }

        if (volume.AttachedTo == vm.Id)
        {
            return Decision.Nothing;
        }

        if (WhyNotAttachable(volume, vm, VolumesOn(vm.Id).Count, "volume") is { } refusal)
        {
            return Decision.Refuse(refusal);
        }

        return Decision.Accept(new VolumeAttached(volume.Id, vm.Id));
    }

    /// <summary>Why the volume cannot be attached to the VM (which already has <paramref name="attached"/>); null when it can.</summary>
    private Refusal? WhyNotAttachable(VolumeRecord volume, VmRecord? vm, int attached, string field)
    {
        if (volume.AttachedTo is { } other && Vms.TryGetValue(other, out var user))
        {
            return Refusal.Conflict(field, $"volume '{volume.Name}' is attached to VM '{user.Spec.Name}'; a volume is attached to one VM at a time");
        }

        if (attached >= VolumeRecord.MaxPerVm)
        {
            return Refusal.Conflict(field, $"a VM has at most {VolumeRecord.MaxPerVm} volumes");
        }

        if (vm is null)
        {
            return null;
        }

        // Where the VM runs (or its own disk is pinned) must reach the volume: a running VM does not move for a disk.
        var where = vm.Host ?? vm.Disk?.Host;
        if (where is { } hostId && Hosts.TryGetValue(hostId, out var host) && !Reaches(host, volume))
        {
            return Refusal.Conflict(field, $"volume '{volume.Name}' is on {volume.Where}, which host {hostId} (where VM '{vm.Spec.Name}' is) cannot reach");
        }

        return VolumesOn(vm.Id).FirstOrDefault(v => v.Host is { } h && volume.Host is { } mine && h != mine) is { } apart
            ? Refusal.Conflict(field, $"volume '{volume.Name}' is on {volume.Where} and volume '{apart.Name}' on {apart.Where}: no host reaches both")
            : null;
    }

    private Decision DecideDetachVolume(VolumeCommands.DetachVolume c)
    {
        if (FindVm(c.Tenant, c.Vm) is not { } vm)
        {
            return Decision.Refuse(Refusal.NotFound($"no VM named '{FieldError.Echo(c.Vm)}'"));
        }

        if (FindVolume(c.Tenant, c.Volume) is not { } volume)
        {
            return Decision.Refuse(Refusal.NotFound($"no volume '{FieldError.Echo(c.Volume)}'"));
        }

        return volume.AttachedTo == vm.Id
            ? Decision.Accept(new VolumeDetached(volume.Id, vm.Id))
            : Decision.Refuse(Refusal.Conflict("volume", $"volume '{c.Volume}' is not attached to VM '{c.Vm}'"));
    }

    /// <summary>
    /// Part of a VM's create: its storage quota (its disk plus nothing else: the volumes it names are counted already), and
    /// the volumes it names: the tenant's, free, and reachable together. Null when it may go on.
    /// </summary>
    private Decision? WhyNoVolumes(TenantRecord tenant, VmSpec spec)
    {
        if (tenant.Quota.StorageExceeded(StorageUsedGiB(tenant.Id), spec.EffectiveDiskGiB, "diskGiB") is { } exceeded)
        {
            return Decision.Refuse(Refusal.Forbidden(exceeded));
        }

        var names = spec.Volumes ?? [];
        if (names.Count > VolumeRecord.MaxPerVm)
        {
            return Decision.Refuse(Refusal.Invalid([new FieldError("volumes", $"at most {VolumeRecord.MaxPerVm} volumes per VM, was {names.Count}")]));
        }

        var chosen = new List<VolumeRecord>();
        for (var i = 0; i < names.Count; i++)
        {
            if (FindVolume(tenant.Id, names[i]) is not { } volume)
            {
                return Decision.Refuse(Refusal.Invalid([new FieldError($"volumes[{i}]", $"no volume '{FieldError.Echo(names[i])}'")]));
            }

            if (chosen.Contains(volume))
            {
                return Decision.Refuse(Refusal.Invalid([new FieldError($"volumes[{i}]", $"volume '{volume.Name}' is named twice")]));
            }

            if (WhyNotAttachable(volume, null, chosen.Count, $"volumes[{i}]") is { } refusal)
            {
                return Decision.Refuse(refusal);
            }

            if (chosen.FirstOrDefault(v => v.Host is { } h && volume.Host is { } mine && h != mine) is { } apart)
            {
                return Decision.Refuse(Refusal.Conflict($"volumes[{i}]",
                    $"volume '{volume.Name}' is on {volume.Where} and volume '{apart.Name}' on {apart.Where}: no host reaches both"));
            }

            chosen.Add(volume);
        }

        return null;
    }

    /// <summary>The VM's delete with its volumes: each deleted with it (their files go once their host hears).</summary>
    private IEnumerable<ILedgerEvent> VolumesDeletedWith(VmRecord vm) =>
        VolumesOn(vm.Id).Select(v => (ILedgerEvent)new VolumeDeleted(v.Id, v.Tenant));

    /// <summary>Folds in what an event changes about volumes and storage usage; <paramref name="next"/> is the rest of it applied.</summary>
    private LedgerState ApplyVolumes(ILedgerEvent evt, LedgerState next) => evt switch
    {
        VolumeCreated e => next with
        {
            Volumes = next.Volumes.SetItem(e.Id, new VolumeRecord(e.Id, e.Tenant, e.Name, e.SizeGiB, e.Pool, e.Host, null, e.At)),
            DiskAllocations = Charge(next.DiskAllocations, new PoolKey(e.Host, e.Pool), e.SizeGiB),
            StorageUsage = Charge(next.StorageUsage, e.Tenant, e.SizeGiB),
        },
        VolumeDeleted e when next.Volumes.TryGetValue(e.Id, out var gone) => next with
        {
            Volumes = next.Volumes.Remove(e.Id),
            DiskAllocations = Charge(next.DiskAllocations, gone.Key, -gone.SizeGiB),
            StorageUsage = Charge(next.StorageUsage, gone.Tenant, -gone.SizeGiB),
        },
        VolumeResized e when next.Volumes.TryGetValue(e.Id, out var grown) => next with
        {
            Volumes = next.Volumes.SetItem(e.Id, grown with { SizeGiB = e.SizeGiB }),
            DiskAllocations = Charge(next.DiskAllocations, grown.Key, e.SizeGiB - grown.SizeGiB),
            StorageUsage = Charge(next.StorageUsage, grown.Tenant, e.SizeGiB - grown.SizeGiB),
        },
        VolumeAttached e when next.Volumes.TryGetValue(e.VolumeId, out var volume) =>
            next with { Volumes = next.Volumes.SetItem(e.VolumeId, volume with { AttachedTo = e.VmId }) },
        VolumeDetached e when next.Volumes.TryGetValue(e.VolumeId, out var volume) =>
            next with { Volumes = next.Volumes.SetItem(e.VolumeId, volume with { AttachedTo = null }) },
        // A VM's own disk is charged to its tenant's storage with the rest of its usage (ApplyCore): one copy of the state.
        VmRequested e => WithVolumesOfNewVm(e, next),
        VmReleased e => DetachAll(e.VmId, next),
        _ => next,
    };

    /// <summary>The volumes a create names attached to the new VM, whose recorded spec keeps none (attachments live on volumes).</summary>
    private static LedgerState WithVolumesOfNewVm(VmRequested e, LedgerState next)
    {
        if (e.Spec.Volumes is not { } names)
        {
            return next;
        }

        var volumes = next.Volumes;
        foreach (var name in names)
        {
            if (next.FindVolume(e.Tenant, name) is { } volume)
            {
                volumes = volumes.SetItem(volume.Id, volume with { AttachedTo = e.VmId });
            }
        }

        var vm = next.Vms[e.VmId];
        return next with { Volumes = volumes, Vms = next.Vms.SetItem(e.VmId, vm with { Spec = vm.Spec with { Volumes = null } }) };
    }

    /// <summary>A released VM lets go of its volumes: they outlive it.</summary>
    private static LedgerState DetachAll(VmId vm, LedgerState next) =>
        next.Volumes.IsEmpty
            ? next
            : next with
            {
                Volumes = next.Volumes.SetItems(next.Volumes.Values.Where(v => v.AttachedTo == vm)
                    .Select(v => KeyValuePair.Create(v.Id, v with { AttachedTo = null }))),
            };

    private static ImmutableDictionary<TKey, long> Charge<TKey>(ImmutableDictionary<TKey, long> sums, TKey key, long change)
        where TKey : notnull
    {
        var left = sums.GetValueOrDefault(key) + change;
        return left != 0 ? sums.SetItem(key, left) : sums.Remove(key);
    }

    /// <summary>The state rebuilt from a snapshot with its volumes: charged to their pools and tenants.</summary>
    private LedgerState WithVolumes(IEnumerable<VolumeRecord> volumes)
    {
        var state = this with { Volumes = volumes.ToImmutableDictionary(v => v.Id) };
        return state.Charged(state.Volumes.Values.Select(v => (v.Key, v.Tenant, (long)v.SizeGiB)));
    }

    /// <summary>The state with each item's GiB charged to its pool and its tenant's storage (a rebuild from a snapshot's records).</summary>
    private LedgerState Charged(IEnumerable<(PoolKey Pool, TenantId Tenant, long GiB)> items)
    {
        var allocations = DiskAllocations;
        var usage = StorageUsage;
        foreach (var (pool, tenant, gib) in items)
        {
            allocations = Charge(allocations, pool, gib);
            usage = Charge(usage, tenant, gib);
        }

        return this with { DiskAllocations = allocations, StorageUsage = usage };
    }

    private static ImmutableDictionary<TenantId, long> SumStorage(IReadOnlyList<VmRecord> vms)
    {
        var sums = new Dictionary<TenantId, long>();
        foreach (var vm in vms)
        {
            sums[vm.Tenant] = sums.GetValueOrDefault(vm.Tenant) + vm.Spec.EffectiveDiskGiB;
        }

        return sums.ToImmutableDictionary();
    }
}
