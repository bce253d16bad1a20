using System.Globalization;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Apply;

/// <summary>
/// Declarative apply, pure: compares what a file asks for with a tenant's VMs and says what to do with each. The file
/// is the whole truth for the VMs it names: a field it leaves out means the default (no labels, default resources),
/// not "keep what is there".
/// </summary>
public static class ApplyPlanner
{
    /// <summary>The plan for specs that all want to run.</summary>
    public static ApplyPlan Plan(IReadOnlyList<VmSpec> desired, IReadOnlyList<VmRecord> current, bool prune) =>
        Plan(desired.Select(spec => new DesiredVm(spec)).ToList(), current, prune);

    /// <summary>
    /// One step per VM named by the file or held by the tenant, ordered by name (ordinal). <paramref name="current"/>
    /// is one tenant's VMs; one being deleted counts as gone, so a desired VM of its name is created again.
    /// A VM the file does not name is deleted only when <paramref name="prune"/>, else left alone (unchanged).
    /// </summary>
    public static ApplyPlan Plan(IReadOnlyList<DesiredVm> desired, IReadOnlyList<VmRecord> current, bool prune)
    {
        var wanted = new Dictionary<string, DesiredVm>(StringComparer.Ordinal);
        foreach (var vm in desired)
        {
            if (!wanted.TryAdd(vm.Name, vm))
            {
                throw new ArgumentException($"VM '{vm.Name}' is desired twice", nameof(desired));
            }
        }

        var existing = new Dictionary<string, VmRecord>(StringComparer.Ordinal);
        foreach (var vm in current.Where(v => v.Status != VmStatus.Deleting))
        {
            if (!existing.TryAdd(vm.Spec.Name, vm))
            {
                throw new ArgumentException($"two VMs named '{vm.Spec.Name}': pass one tenant's VMs", nameof(current));
            }
        }

        var steps = wanted.Keys.Union(existing.Keys).Order(StringComparer.Ordinal).Select(name =>
            (wanted.GetValueOrDefault(name), existing.GetValueOrDefault(name)) switch
            {
                ({ } want, { } have) => Compare(want, have),
                ({ } want, null) => new ApplyStep.Create(want),
                _ when prune => new ApplyStep.Delete(name),
                _ => (ApplyStep)new ApplyStep.Unchanged(name, "not in the file; kept (pruning would delete it)"),
            });
        return new ApplyPlan(steps.ToList());
    }

    private static ApplyStep Compare(DesiredVm want, VmRecord have)
    {
        var to = want.Spec;
        var from = have.Spec;
        var why = new List<string>();
        if (to.Vcpus != from.Vcpus)
        {
            why.Add($"vcpus {Number(from.Vcpus)} → {Number(to.Vcpus)}");
        }

        if (to.MemoryMiB != from.MemoryMiB)
        {
            why.Add($"memory {Number(from.MemoryMiB)} → {Number(to.MemoryMiB)} MiB");
        }

        if (to.Image != from.Image)
        {
            why.Add($"image {from.Image} → {to.Image}");
        }

        if (to.RestartPolicy != from.RestartPolicy)
        {
            why.Add($"restart {from.RestartPolicy.ToWire()} → {to.RestartPolicy.ToWire()}");
        }

        if (to.Accelerator != from.Accelerator)
        {
            why.Add($"accelerator {from.Accelerator ?? "any"} → {to.Accelerator ?? "any"}");
        }

        if (to.Driver != from.Driver)
        {
            why.Add($"driver {from.Driver ?? "any"} → {to.Driver ?? "any"}");
        }

        // Where a VM may run is decided at placement: a new selector or group needs a new placement, so a new VM.
        if (!Placement.HostSelectors.Same(to.HostSelector, from.HostSelector))
        {
            why.Add($"host selector {Selector(from)} → {Selector(to)}");
        }

        if (to.Group != from.Group)
        {
            why.Add($"group {from.Group ?? "none"} → {to.Group ?? "none"}");
        }

        // The seed is read at first boot (cloud-init runs per instance): a new one needs a new VM. Digests only, never the bytes.
        why.AddRange(ApplyDescriptions.BootstrapChanges(from, to));

        if (why.Count > 0)
        {
            return new ApplyStep.Replace(want, why);
        }

        var what = new List<string>();
        var resources = to.EffectiveResources == from.EffectiveResources ? null : to.EffectiveResources;
        if (resources is not null)
        {
            what.AddRange(ApplyDescriptions.ResourceChanges(from.EffectiveResources, resources, to.Vcpus));
        }

        var labels = VmLabels.Same(to.EffectiveLabels, from.EffectiveLabels) ? null : to.EffectiveLabels;
        if (labels is not null)
        {
            what.Add(ApplyDescriptions.LabelChanges(from.EffectiveLabels, labels));
        }

        DesiredState? state = want.State == have.Desired ? null : want.State;
        if (state is { } changed)
        {
            what.Add(changed == DesiredState.Stopped ? "stop" : "start");
        }

        if (what.Count > 0)
        {
            return new ApplyStep.Update(want.Name, what, resources, labels, state);
        }

        // Apply converges what was asked for, not what happened since: a VM that crashed for good or was powered
        // off by its guest stays down until someone starts it, so applying a file twice never restarts anything.
        var note = have.Desired == DesiredState.Running && have.Status is VmStatus.Failed or VmStatus.Stopped
            ? $"{have.Status}; apply does not restart it (start it to retry)"
            : "";
        return new ApplyStep.Unchanged(want.Name, note);
    }

    private static string Number(long n) => n.ToString(CultureInfo.InvariantCulture);

    private static string Selector(VmSpec spec) => spec.HostSelector is { Count: > 0 } terms ? string.Join(",", terms) : "none";
}

/// <summary>How apply steps describe specs and changes, for people.</summary>
internal static class ApplyDescriptions
{
    public static string Summary(DesiredVm vm)
    {
        var spec = vm.Spec;
        var text = $"{Number(spec.Vcpus)} vCPU{(spec.Vcpus == 1 ? "" : "s")}, {Number(spec.MemoryMiB)} MiB, image {spec.Image}";
        if (spec.Driver is { } driver)
        {
            text += $", driver {driver}";
        }

        return vm.State == DesiredState.Stopped ? text + ", stopped" : text;
    }

    public static IEnumerable<string> ResourceChanges(VmResources from, VmResources to, int vcpus)
    {
        if (from.CpuShares != to.CpuShares)
        {
            yield return $"cpu-shares {Shares(from, vcpus)} → {Shares(to, vcpus)}";
        }

        if (from.CpuReservationMillicores != to.CpuReservationMillicores)
        {
            yield return $"cpu-reservation {Millicores(from.CpuReservationMillicores)} → {Millicores(to.CpuReservationMillicores)}";
        }

        if (from.CpuLimitMillicores != to.CpuLimitMillicores)
        {
            yield return $"cpu-limit {Millicores(from.CpuLimitMillicores)} → {Millicores(to.CpuLimitMillicores)}";
        }

        if (from.MemoryReservationMiB != to.MemoryReservationMiB)
        {
            yield return $"memory-reservation {MiB(from.MemoryReservationMiB)} → {MiB(to.MemoryReservationMiB)}";
        }

        if (from.MemoryLimitMiB != to.MemoryLimitMiB)
        {
            yield return $"memory-limit {MiB(from.MemoryLimitMiB)} → {MiB(to.MemoryLimitMiB)}";
        }

        if (from.Cpuset != to.Cpuset)
        {
            yield return $"cpuset {from.Cpuset ?? "none"} → {to.Cpuset ?? "none"}";
        }
    }

    /// <summary>
    /// What differs in what the guest is handed at boot, as it takes effect (a hostname equal to the VM's name is no
    /// change); user-data by its size and digest, since it may hold secrets.
    /// </summary>
    public static IEnumerable<string> BootstrapChanges(VmSpec from, VmSpec to)
    {
        if (VmBootstrap.HostnameOf(from) != VmBootstrap.HostnameOf(to))
        {
            yield return $"hostname {VmBootstrap.HostnameOf(from)} → {VmBootstrap.HostnameOf(to)}";
        }

        var (fromBoot, toBoot) = (from.Bootstrap ?? new VmBootstrap(), to.Bootstrap ?? new VmBootstrap());
        if (!fromBoot.EffectiveSshKeys.SequenceEqual(toBoot.EffectiveSshKeys, StringComparer.Ordinal))
        {
            yield return $"ssh-keys {Number(fromBoot.EffectiveSshKeys.Count)} → {Number(toBoot.EffectiveSshKeys.Count)} keys";
        }

        if (!fromBoot.UserDataBytes().SequenceEqual(toBoot.UserDataBytes()))
        {
            yield return $"user-data {UserData(fromBoot)} → {UserData(toBoot)}";
        }
    }

    private static string UserData(VmBootstrap bootstrap) => bootstrap.UserDataBytes().Length == 0
        ? "none"
        : $"{Number(bootstrap.UserDataBytes().Length)} bytes (sha256 {bootstrap.UserDataSha256()[..12]})";

    /// <summary>"labels +tier=web -old env=dev→prod": added, removed, changed, by key.</summary>
    public static string LabelChanges(IReadOnlyDictionary<string, string> from, IReadOnlyDictionary<string, string> to)
    {
        var parts = new List<string>();
        foreach (var key in from.Keys.Union(to.Keys).Order(StringComparer.Ordinal))
        {
            var had = from.TryGetValue(key, out var old);
            var has = to.TryGetValue(key, out var now);
            if (!had)
            {
                parts.Add($"+{key}={now}");
            }
            else if (!has)
            {
                parts.Add($"-{key}");
            }
            else if (old != now)
            {
                parts.Add($"{key}={old}→{now}");
            }
        }

        return "labels " + string.Join(" ", parts);
    }

    private static string Shares(VmResources resources, int vcpus) =>
        Number(resources.SharesFor(vcpus)) + (resources.CpuShares is null ? " (default)" : "");

    private static string Millicores(int? millicores) => millicores switch
    {
        null => "none",
        0 => "0",
        { } m => Number(m) + "m",
    };

    private static string MiB(int? mib) => mib switch
    {
        null => "none",
        0 => "0",
        { } m => Number(m) + " MiB",
    };

    private static string Number(long n) => n.ToString(CultureInfo.InvariantCulture);
}
