namespace Orchestrator.Tools.Chaos;

/// <summary>The faults the nemesis knows. Host faults take one host away; the others leave every host a member.</summary>
public enum FaultKind
{
    /// <summary>kill -9 of a node process; its guard fences its guests.</summary>
    KillNode,

    /// <summary>kill -9 of a node and its guard: the whole host dies, its guests with it.</summary>
    CrashHost,

    /// <summary>The host's link cut: it loses the other hosts and PostgreSQL alike.</summary>
    Partition,

    /// <summary>The whole host frozen (node, guard, guests) with the cgroup freezer, then thawed.</summary>
    FreezeHost,

    /// <summary>PostgreSQL stopped at once, as a crash would, then started again.</summary>
    RestartPostgres,

    /// <summary>A host's disk I/O throttled to 1 MiB/s and 50 IO/s (cgroup blkio).</summary>
    SlowDisk,
}

/// <summary>One fault of an episode: <paramref name="OffsetS"/> after the episode began, held for <paramref name="ForS"/>.</summary>
public sealed record PlannedFault(FaultKind Kind, int Host, double OffsetS, double ForS);

/// <summary>
/// A quiet gap, then one host fault and, sometimes, a second fault overlapping it that leaves every host a member (a
/// PostgreSQL restart, or a slow disk on another host). One host fault at a time keeps a majority of three: two
/// hosts lost at once is a cluster that stops by design, not a finding.
/// </summary>
public sealed record ChaosEpisode(double QuietS, PlannedFault Primary, PlannedFault? Overlapping);

/// <summary>The nemesis's schedule, decided from a seed alone so that a run can be repeated.</summary>
public static class NemesisPlan
{
    public static readonly IReadOnlyList<FaultKind> HostFaults = [FaultKind.KillNode, FaultKind.CrashHost, FaultKind.Partition, FaultKind.FreezeHost];
    public static readonly IReadOnlyList<FaultKind> MemberFaults = [FaultKind.RestartPostgres, FaultKind.SlowDisk];

    /// <summary>
    /// Episodes enough to fill <paramref name="runS"/> seconds (the runner stops when the time is up). Each host fault
    /// holds long enough for the failure detector to act (a freeze or partition past the fence), or briefly.
    /// </summary>
    public static IReadOnlyList<ChaosEpisode> Create(int seed, int hosts, double runS, IReadOnlySet<FaultKind> kinds)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(hosts, 3);
        var random = new Random(seed);
        var hostKinds = HostFaults.Where(kinds.Contains).ToList();
        var memberKinds = MemberFaults.Where(kinds.Contains).ToList();
        if (hostKinds.Count == 0 && memberKinds.Count == 0)
        {
            throw new ArgumentException("no fault kinds to inject", nameof(kinds));
        }

        var episodes = new List<ChaosEpisode>();
        for (var plannedS = 0.0; plannedS < runS;)
        {
            var quiet = 5 + random.NextDouble() * 10;
            var victim = random.Next(1, hosts + 1);
            var primary = hostKinds.Count > 0
                ? Host(hostKinds[random.Next(hostKinds.Count)], victim, random)
                : Member(memberKinds[random.Next(memberKinds.Count)], victim, 0, random);
            PlannedFault? overlapping = null;
            if (hostKinds.Count > 0 && memberKinds.Count > 0 && random.NextDouble() < 0.4)
            {
                var other = victim % hosts + 1;
                overlapping = Member(memberKinds[random.Next(memberKinds.Count)], other, primary.ForS * random.NextDouble(), random);
            }

            episodes.Add(new ChaosEpisode(quiet, primary, overlapping));
            // A host fault's recovery (restart, rejoin) takes about as long again as the fault itself.
            plannedS += quiet + 2 * primary.ForS;
        }

        return episodes;
    }

    private static PlannedFault Host(FaultKind kind, int host, Random random) => kind switch
    {
        FaultKind.KillNode or FaultKind.CrashHost => new PlannedFault(kind, host, 0, 2 + random.NextDouble() * 8),
        // Sometimes shorter than the fence (the host comes back a member), mostly longer (its VMs move).
        _ => new PlannedFault(kind, host, 0, random.NextDouble() < 0.25 ? 1 + random.NextDouble() * 2 : 12 + random.NextDouble() * 10),
    };

    private static PlannedFault Member(FaultKind kind, int host, double offsetS, Random random) => kind switch
    {
        FaultKind.RestartPostgres => new PlannedFault(kind, 0, offsetS, 1 + random.NextDouble() * 6),
        _ => new PlannedFault(kind, host, offsetS, 5 + random.NextDouble() * 15),
    };
}
