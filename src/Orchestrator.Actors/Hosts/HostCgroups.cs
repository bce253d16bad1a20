using Akka.Event;
using Orchestrator.Actors.Settings;
using Orchestrator.Domain;
using Orchestrator.Domain.Hosts;
using Orchestrator.Domain.Shares;
using Orchestrator.Hypervisor;
using Orchestrator.Hypervisor.Cgroups;

namespace Orchestrator.Actors.Hosts;

/// <summary>
/// How a host enforces CPU shares, reservations and limits with one cgroup per VM: opening the host's scope (for the
/// agent, and for the node's start-up check when cgroups are required), what each running VM's cgroup gets, and
/// putting a VM's process in its cgroup under those limits (<see cref="VmEnforcer"/>, for its VM actor).
/// </summary>
public static class HostCgroups
{
    private const long MiB = 1024 * 1024;

    /// <summary>The host's cgroup directory name: its id when that is a safe path component, else a digest of it.</summary>
    public static string Scope(HostId hostId) =>
        System.Text.RegularExpressions.Regex.IsMatch(hostId.Value, @"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\z")
            ? hostId.Value
            : "host-" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(hostId.Value)))[..16];

    /// <summary>The host's VM cgroups as its settings ask; null when not enforced (off, or not usable here: then it says why).</summary>
    /// <exception cref="HypervisorException">cgroups = required, and this host cannot enforce them.</exception>
    public static VmCgroups? Open(HostSettings settings, HostId hostId, ILoggingAdapter log)
    {
        if (settings.Cgroups == CgroupMode.Off)
        {
            return null;
        }

        var layout = CgroupLayout.Detect();
        if (layout.Version == CgroupVersion.None)
        {
            if (settings.Cgroups == CgroupMode.Required)
            {
                throw new HypervisorException($"orchestrator.host.cgroups = required, but {layout.Problem}");
            }

            log.Warning("CPU shares, reservations and limits are not enforced on this host: {0}", layout.Problem ?? "no cgroups");
            return null;
        }

        try
        {
            var cgroups = new VmCgroups(layout, Scope(hostId));
            cgroups.PrepareScope(settings.Cpuset, settings.EffectiveCgroupWeight);
            log.Info("enforcing VM shares and limits with cgroup {0} under {1}", layout.Version, layout.Root);
            return cgroups;
        }
        catch (HypervisorException ex) when (settings.Cgroups == CgroupMode.Auto)
        {
            // Not root, a read-only hierarchy, a cpuset the machine lacks: run, but say what is not enforced.
            log.Warning("CPU shares, reservations and limits are not enforced on this host: {0}", ex.Message);
            return null;
        }
    }

    /// <summary>With cgroups = required: whether this host can enforce them at all, before the node starts.</summary>
    /// <exception cref="HypervisorException">it cannot; the message says why.</exception>
    public static void Require(HostSettings settings, HostId hostId)
    {
        var layout = CgroupLayout.Detect();
        if (layout.Version == CgroupVersion.None)
        {
            throw new HypervisorException(layout.Problem ?? "no cgroup hierarchy found");
        }

        new VmCgroups(layout, Scope(hostId)).PrepareScope(settings.Cpuset, null);
    }

    /// <summary>
    /// What each running VM's cgroup gets: its full-contention entitlement as the CPU weight (so reservations hold
    /// while everyone burns; CFS hands idle CPU to whoever wants it), its limit as the CFS quota, its memory limit and
    /// reservation, its cpuset.
    /// </summary>
    public static IReadOnlyDictionary<VmId, CgroupLimits> Limits(IReadOnlyList<VmAssignment> running, int hostCpus)
    {
        var members = running.Select(a => new HostShares.Member(a.VmId, a.Tenant, a.Vcpus, a.EffectiveResources)).ToList();
        var pools = running.GroupBy(a => a.Tenant).ToDictionary(g => g.Key, g => g.First().Pool);
        var entitled = HostShares.UnderContention(hostCpus * 1000L, members, tenant => pools.GetValueOrDefault(tenant));
        return running.ToDictionary(a => a.VmId, a =>
        {
            var resources = a.EffectiveResources;
            return new CgroupLimits(
                HostShares.Weight(entitled[a.VmId]),
                resources.CpuLimitMillicores,
                resources.MemoryLimitMiB * MiB,
                resources.MemoryReservationMiB > 0 ? resources.MemoryReservationMiB * MiB : null,
                resources.Cpuset);
        });
    }

    /// <summary>
    /// One VM's cgroup as its VM actor keeps it: the process joins once it runs, and the latest limits the host agent
    /// sent are applied then and whenever they change. Failures are logged, not thrown: the VM runs unenforced.
    /// </summary>
    /// <param name="cgroups">the host's VM cgroups; null when the host does not enforce them (then this does nothing).</param>
    public sealed class VmEnforcer(VmCgroups? cgroups, VmId vmId, string vmName, ILoggingAdapter log)
    {
        private VmCgroup? _cgroup;
        private CgroupLimits? _limits;

        /// <summary>The VM's cgroup once its process is in it; null before, or when its limits are not enforced.</summary>
        public string? Path => _cgroup?.Path;

        /// <summary>Moves the VM's process (all its threads) into its own cgroup, then enforces the latest limits.</summary>
        public void Join(int pid)
        {
            if (cgroups is null)
            {
                return;
            }

            if (pid == Environment.ProcessId)
            {
                // The native engine's VMs are threads of this node: moving "their" process would move the whole node (every
                // VM, the actor system) under this VM's limits, and a small memory limit would kill it.
                log.Warning("VM {0} ({1}) runs inside the node process: cgroups do not enforce its shares and limits (the scheduler's " +
                            "placement still counts them)", vmName, vmId);
                return;
            }

            try
            {
                _cgroup = cgroups.Open(vmId);
                _cgroup.AddProcess(pid); // idempotent: an adopted VM is already there
                Apply();
            }
            catch (HypervisorException ex)
            {
                log.Error("VM {0} ({1}): its shares and limits are not enforced: {2}", vmName, vmId, ex.Message);
            }
        }

        /// <summary>The limits from now on: applied at once when the process is in its cgroup, else when it joins.</summary>
        public void Enforce(CgroupLimits limits)
        {
            _limits = limits;
            Apply();
        }

        private void Apply()
        {
            if (_cgroup is null || _limits is null)
            {
                return;
            }

            try
            {
                _cgroup.Apply(_limits);
            }
            catch (HypervisorException ex)
            {
                log.Error("VM {0} ({1}): could not apply {2}: {3}", vmName, vmId, _limits, ex.Message);
            }
        }
    }
}
