// Snapshots and clones in the ledger (issue 18). A VM's disk is a chain of layers: its top layer (VmDisk.Layer, its own id
// until its first snapshot) is an overlay on VmDisk.Backing (a snapshot's layer, or the image). A snapshot freezes the top
// and gives the VM a new one; restore and clone make a new top on a snapshot's layer. Layers are never merged, so a
// snapshot's file may go only when nothing backs on it, and the refusal names what does.
using System.Collections.Immutable;
using Orchestrator.Domain.Storage;
using Orchestrator.Domain.Vms;
using static Orchestrator.Domain.Ledger.LedgerEvents;
using static Orchestrator.Domain.Ledger.SnapshotEvents;

namespace Orchestrator.Domain.Ledger;

/// <summary>A layer file that is no longer needed: what a host of its pool deletes.</summary>
public sealed record LayerGone(string Layer, string Pool, HostId? Host);

public sealed partial record LedgerState
{
    /// <summary>Snapshots by id.</summary>
    public ImmutableDictionary<string, SnapshotRecord> Snapshots { get; init; } = ImmutableDictionary<string, SnapshotRecord>.Empty;

    /// <summary>The layer the VM's QEMU writes to: its own id until its first snapshot or restore.</summary>
    public static string TopLayerOf(VmRecord vm) => vm.Disk?.Layer ?? vm.Id.Compact;

    public IEnumerable<SnapshotRecord> SnapshotsOf(TenantId tenant) =>
        Snapshots.Values.Where(s => s.Tenant == tenant).OrderBy(s => s.CreatedAt).ThenBy(s => s.Name, StringComparer.Ordinal);

    public IReadOnlyList<SnapshotRecord> SnapshotsOfVm(VmId vm) =>
        Snapshots.IsEmpty ? [] : Snapshots.Values.Where(s => s.Vm == vm).OrderBy(s => s.CreatedAt).ThenBy(s => s.Name, StringComparer.Ordinal).ToList();

    public SnapshotRecord? FindSnapshot(TenantId tenant, string vm, string name) =>
        FindVm(tenant, vm) is { } owner ? Snapshots.Values.FirstOrDefault(s => s.Vm == owner.Id && s.Name == name) : null;

    private Decision DecideTakeSnapshot(SnapshotCommands.TakeSnapshot c, DateTimeOffset now)
    {
        var (found, refused) = Changeable(c.Tenant, c.Vm);
        if (refused is not null)
        {
            return refused;
        }

        var vm = found!;
        var errors = new List<FieldError>();
        if (!VmSpecValidator.IsValidName(c.Name))
        {
            errors.Add(new FieldError("name", "must be 1-63 characters of lowercase letters, digits and '-', starting with a letter and not ending with '-'"));
        }

        if (!SnapshotRecord.IsValidId(c.Id) || !SnapshotRecord.IsValidId(c.NewLayer))
        {
            errors.Add(new FieldError("id", "must be 32 lowercase hex digits"));
        }

        if (errors.Count > 0)
        {
            return Decision.Refuse(Refusal.Invalid(errors));
        }

        if (vm.Disk is not { } disk)
        {
            return Decision.Refuse(Refusal.Conflict("vm", $"VM '{vm.Spec.Name}' has no disk yet (it gets one where it is first placed)"));
        }

        var mine = SnapshotsOfVm(vm.Id);
        if (WhyNoNew(c.Tenant, "snapshot", c.Name, c.Id, mine.Any(s => s.Name == c.Name), Snapshots.ContainsKey(c.Id),
                mine.Count, SnapshotRecord.MaxPerVm, out var tenant) is { } no)
        {
            return no;
        }

        if (tenant.Quota.SnapshotsExceeded(SnapshotsOf(c.Tenant).Count()) is { } tooMany)
        {
            return Decision.Refuse(Refusal.Forbidden(tooMany));
        }

        var size = vm.Spec.EffectiveDiskGiB;
        if (tenant.Quota.StorageExceeded(StorageUsedGiB(c.Tenant), size, "name") is { } exceeded)
        {
            return Decision.Refuse(Refusal.Forbidden(exceeded));
        }

        if (WhyNoRoom(PoolKey.Of(disk), size, "name", $"a snapshot is charged its VM's {size} GiB disk") is { } full)
        {
            return Decision.Refuse(full);
        }

        // With no process, nothing writes the frozen layer: whole at once. Else once the host switched its QEMU over.
        var ready = vm.Status is VmStatus.Pending or VmStatus.Stopped or VmStatus.Failed;
        return Decision.Accept(new SnapshotTaken(c.Id, c.Tenant, c.Name, vm.Id, TopLayerOf(vm), disk.Backing, c.NewLayer, disk.Pool, disk.Host,
            size, vm.Spec.Image, ready, now));
    }

    /// <summary>Why the pool cannot take <paramref name="sizeGiB"/> more; null when it can (or no host reports it now).</summary>
    private Refusal? WhyNoRoom(PoolKey key, int sizeGiB, string field, string why)
    {
        var promisable = Hosts.Values.SelectMany(h => h.EffectivePools.Where(p => PoolKey.Of(h.Id, p) == key))
            .Select(p => p.PromisableGiB).DefaultIfEmpty(long.MaxValue).Max();
        var free = promisable - DiskAllocations.GetValueOrDefault(key);
        var where = key.Host is { } host ? $"host {host}'s local pool '{key.Pool}'" : $"shared pool '{key.Pool}'";
        return sizeGiB > free ? Refusal.Conflict(field, $"{where} has {Math.Max(0, free)} GiB free; {why}") : null;
    }

    private Decision DecideDeleteSnapshot(SnapshotCommands.DeleteSnapshot c)
    {
        if (FindSnapshot(c.Tenant, c.Vm, c.Name) is not { } snapshot)
        {
            return Decision.Refuse(Refusal.NotFound($"no snapshot '{FieldError.Echo(c.Name)}' of VM '{FieldError.Echo(c.Vm)}'"));
        }

        return DependentsOf(snapshot).FirstOrDefault() is { } dependent
            ? Decision.Refuse(Refusal.Conflict("name", $"snapshot '{c.Name}' of VM '{c.Vm}' cannot be deleted: {dependent} is an overlay on it"))
            : Decision.Accept(new SnapshotDeleted(snapshot.Id, snapshot.Tenant));
    }

    /// <summary>What backs on the snapshot's layer, in words: VMs' disks (its own VM's or a clone's) and other snapshots.</summary>
    private IEnumerable<string> DependentsOf(SnapshotRecord snapshot)
    {
        foreach (var vm in Vms.Values.Where(v => v.Disk?.Backing == snapshot.Layer).OrderBy(v => v.Spec.Name, StringComparer.Ordinal))
        {
            yield return vm.Id == snapshot.Vm
                ? $"the disk of VM '{vm.Spec.Name}' (restore an older snapshot, or delete the VM with its snapshots)"
                : $"the disk of VM '{vm.Spec.Name}' (a clone)";
        }

        foreach (var other in Snapshots.Values.Where(s => s.Backing == snapshot.Layer).OrderBy(s => s.CreatedAt))
        {
            yield return $"snapshot '{other.Name}' of VM '{Vms.GetValueOrDefault(other.Vm)?.Spec.Name}'";
        }
    }

    private Decision DecideRestoreSnapshot(SnapshotCommands.RestoreSnapshot c)
    {
        var (found, refused) = Changeable(c.Tenant, c.Vm);
        if (refused is not null)
        {
            return refused;
        }

        var vm = found!;
        if (FindSnapshot(c.Tenant, c.Vm, c.Snapshot) is not { } snapshot)
        {
            return Decision.Refuse(Refusal.NotFound($"no snapshot '{FieldError.Echo(c.Snapshot)}' of VM '{FieldError.Echo(c.Vm)}'"));
        }

        if (!SnapshotRecord.IsValidId(c.NewLayer))
        {
            return Decision.Refuse(Refusal.Invalid([new FieldError("id", "must be 32 lowercase hex digits")]));
        }

        // Its QEMU must be gone: a running process would go on writing the layer the restore throws away.
        if (vm.Status is not (VmStatus.Stopped or VmStatus.Failed or VmStatus.Pending) || vm.Desired != DesiredState.Stopped)
        {
            return Decision.Refuse(Refusal.Conflict("vm",
                $"VM '{vm.Spec.Name}' is {vm.Status.ToString().ToLowerInvariant()}: a VM is restored only while stopped (vm stop {vm.Spec.Name})"));
        }

        return Decision.Accept(new VmDiskRestored(vm.Id, snapshot.Id, c.NewLayer));
    }

    private Decision DecideConfirmDiskLayer(SnapshotCommands.ConfirmDiskLayer c)
    {
        if (!Vms.TryGetValue(c.VmId, out var vm) || TopLayerOf(vm) != c.Layer)
        {
            return Decision.Nothing; // a confirmation from before a later snapshot or restore
        }

        var pending = SnapshotsOfVm(vm.Id).Where(s => !s.Ready).Select(s => s.Id).ToList();
        return pending.Count == 0 ? Decision.Nothing : Decision.Accept(new SnapshotsReady(vm.Id, pending));
    }

    /// <summary>
    /// Part of a VM's create from <c>VM/SNAPSHOT</c>: the snapshot is the tenant's and whole, the image is the snapshot's, the
    /// disk no smaller, and the snapshot's pool has room for it (the clone's disk goes there). Null when it may go on.
    /// </summary>
    private Decision? WhyNoClone(TenantId tenant, VmSpec spec)
    {
        if (spec.FromSnapshot is not { } from)
        {
            return null;
        }

        if (ResolveSnapshot(tenant, from) is not { } snapshot)
        {
            return Decision.Refuse(Refusal.Invalid([new FieldError("fromSnapshot",
                $"no snapshot '{FieldError.Echo(from)}' (give it as VM/SNAPSHOT, both the tenant's)")]));
        }

        if (Vms.GetValueOrDefault(snapshot.Vm) is { Status: VmStatus.Deleting } owner)
        {
            return Decision.Refuse(Refusal.Conflict("fromSnapshot",
                $"VM '{owner.Spec.Name}' is being deleted, and its snapshots go with it once its host has stopped it"));
        }

        if (!snapshot.Ready)
        {
            return Decision.Refuse(Refusal.Conflict("fromSnapshot", $"snapshot '{from}' is still being taken"));
        }

        if (spec.Image != snapshot.Image)
        {
            return Decision.Refuse(Refusal.Invalid([new FieldError("image",
                $"a clone boots the image its snapshot was taken with ('{snapshot.Image}'), not '{FieldError.Echo(spec.Image)}'")]));
        }

        if (spec.EffectiveDiskGiB < snapshot.SizeGiB)
        {
            return Decision.Refuse(Refusal.Invalid([new FieldError("diskGiB",
                $"a clone's disk is at least its snapshot's {snapshot.SizeGiB} GiB, was {spec.EffectiveDiskGiB}")]));
        }

        return WhyNoRoom(snapshot.Key, spec.EffectiveDiskGiB, "fromSnapshot", "a clone's disk lives in its snapshot's pool") is { } full
            ? Decision.Refuse(full)
            : null;
    }

    private SnapshotRecord? ResolveSnapshot(TenantId tenant, string reference) =>
        reference.Split('/') is [var vm, var name] ? FindSnapshot(tenant, vm, name) : null;

    /// <summary>Why the VM may not be deleted with its snapshots: another VM (a clone) or snapshot backs on one of them.</summary>
    private Decision? WhyKeepSnapshots(VmRecord vm)
    {
        var mine = SnapshotsOfVm(vm.Id);
        if (mine.Count == 0)
        {
            return null;
        }

        var layers = mine.Select(s => s.Layer).ToHashSet(StringComparer.Ordinal);
        var clone = Vms.Values.Where(v => v.Id != vm.Id && v.Disk?.Backing is { } b && layers.Contains(b)).Select(v => $"VM '{v.Spec.Name}'")
            .Concat(Snapshots.Values.Where(s => s.Vm != vm.Id && s.Backing is { } b && layers.Contains(b))
                .Select(s => $"snapshot '{s.Name}' of VM '{Vms.GetValueOrDefault(s.Vm)?.Spec.Name}'"))
            .FirstOrDefault();
        return clone is null ? null : Decision.Refuse(Refusal.Conflict("name",
            $"VM '{vm.Spec.Name}' cannot be deleted: {clone} is a clone of one of its snapshots (delete the clone first)"));
    }

    /// <summary>
    /// A deleted VM's release with its snapshots, which are layers of its disk: each deleted first, so that their files
    /// go (<see cref="LayersGoneBy"/>) only once nothing runs on them.
    /// </summary>
    private IReadOnlyList<ILedgerEvent> ReleasedWithSnapshots(VmRecord vm) =>
        [.. SnapshotsOfVm(vm.Id).Select(s => (ILedgerEvent)new SnapshotDeleted(s.Id, s.Tenant)), new VmReleased(vm.Id)];

    /// <summary>
    /// The layer files <paramref name="evt"/> leaves unneeded, judged on the state before it: a deleted snapshot's, a
    /// restored VM's old top, a released VM's top when it is not its own id (the host deletes that one with the VM).
    /// </summary>
    public IEnumerable<LayerGone> LayersGoneBy(ILedgerEvent evt)
    {
        switch (evt)
        {
            case SnapshotDeleted e when Snapshots.TryGetValue(e.Id, out var gone):
                yield return new LayerGone(gone.Layer, gone.Pool, gone.Host);
                break;
            case VmDiskRestored e when Vms.TryGetValue(e.VmId, out var vm) && vm.Disk is { } disk:
                yield return new LayerGone(TopLayerOf(vm), disk.Pool, disk.Host);
                break;
            case VmReleased e when Vms.TryGetValue(e.VmId, out var vm) && vm.Disk is { Layer: { } layer } disk:
                yield return new LayerGone(layer, disk.Pool, disk.Host);
                break;
        }
    }

    /// <summary>Folds in what an event changes about snapshots and the VMs' disk layers; <paramref name="next"/> is the rest applied.</summary>
    private LedgerState ApplySnapshots(ILedgerEvent evt, LedgerState next) => evt switch
    {
        SnapshotTaken e when next.Vms.TryGetValue(e.VmId, out var vm) && vm.Disk is { } disk => next with
        {
            Snapshots = next.Snapshots.SetItem(e.Id, new SnapshotRecord(e.Id, e.Tenant, e.Name, e.VmId, e.Layer, e.Backing, e.Pool, e.Host,
                e.SizeGiB, e.Image, e.Ready, e.At)),
            Vms = next.Vms.SetItem(e.VmId, vm with { Disk = disk with { Layer = e.NewLayer, Backing = e.Layer } }),
            DiskAllocations = Charge(next.DiskAllocations, new PoolKey(e.Host, e.Pool), e.SizeGiB),
            StorageUsage = Charge(next.StorageUsage, e.Tenant, e.SizeGiB),
        },
        SnapshotsReady e => next.WithReady(e.Ids),
        SnapshotDeleted e when next.Snapshots.TryGetValue(e.Id, out var gone) => next with
        {
            Snapshots = next.Snapshots.Remove(e.Id),
            DiskAllocations = Charge(next.DiskAllocations, gone.Key, -gone.SizeGiB),
            StorageUsage = Charge(next.StorageUsage, gone.Tenant, -gone.SizeGiB),
        },
        VmDiskRestored e when next.Vms.TryGetValue(e.VmId, out var vm) && vm.Disk is { } disk && next.Snapshots.TryGetValue(e.SnapshotId, out var s) =>
            next with { Vms = next.Vms.SetItem(e.VmId, vm with { Disk = disk with { Layer = e.NewLayer, Backing = s.Layer } }) },
        VmRequested { Spec.FromSnapshot: { } from } e when next.ResolveSnapshot(e.Tenant, from) is { } source => next.WithCloneDisk(e, source),
        // Its process is gone (or fenced): nothing writes the frozen layers any more.
        VmStopped or VmFailed or VmRestarting or VmPending or VmPlaced when evt is IVmLedgerEvent vmEvent && !next.Snapshots.IsEmpty =>
            next.WithReady(next.SnapshotsOfVm(vmEvent.VmId).Where(s => !s.Ready).Select(s => s.Id).ToList()),
        _ => next,
    };

    private LedgerState WithReady(IReadOnlyList<string> ids) =>
        ids.Count == 0 ? this : this with
        {
            Snapshots = Snapshots.SetItems(ids.Where(Snapshots.ContainsKey).Select(id => KeyValuePair.Create(id, Snapshots[id] with { Ready = true }))),
        };

    /// <summary>A clone's disk: its own top layer on the snapshot's, in the snapshot's pool (so placement keeps it where that is).</summary>
    private LedgerState WithCloneDisk(VmRequested e, SnapshotRecord source)
    {
        var vm = Vms[e.VmId];
        var disk = new VmDisk(source.Pool, source.Host, null, source.Layer);
        return this with
        {
            Vms = Vms.SetItem(e.VmId, vm with { Disk = disk }),
            DiskAllocations = Charge(DiskAllocations, PoolKey.Of(disk), e.Spec.EffectiveDiskGiB),
        };
    }

    /// <summary>The state rebuilt from a snapshot with its disk snapshots: charged to their pools and tenants.</summary>
    private LedgerState WithSnapshots(IEnumerable<SnapshotRecord> snapshots)
    {
        var state = this with { Snapshots = snapshots.ToImmutableDictionary(s => s.Id) };
        return state.Charged(state.Snapshots.Values.Select(s => (s.Key, s.Tenant, (long)s.SizeGiB)));
    }
}
