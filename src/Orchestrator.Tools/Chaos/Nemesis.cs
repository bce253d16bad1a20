using System.Diagnostics;
using System.Globalization;

namespace Orchestrator.Tools.Chaos;

/// <summary>
/// Plays a <see cref="NemesisPlan"/> on a <see cref="ChaosCluster"/>: injects each episode's faults, heals them, and
/// brings the victim host back a member (a node that was killed, or that downed itself on a partition or a thaw, is
/// started again on its data dir). Records what it did on the run's clock.
/// </summary>
public sealed class Nemesis(ChaosCluster cluster, Stopwatch clock, TextWriter log)
{
    /// <summary>How long a healed host may take to be Up again before its node is restarted by force.</summary>
    private static readonly TimeSpan RejoinPatience = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Seconds in a row a healed host must be Up with its node alive to count as back: a node downed by the others
    /// (after a thaw, a partition) still shows Up in the ledger for a while before it leaves, and a next host fault
    /// in that while would take two hosts of three.
    /// </summary>
    private const int UpInARow = 15;

    private readonly List<InjectedFault> _faults = [];
    private readonly List<string> _stuck = [];

    /// <summary>
    /// Hosts whose node lived but was not Up again long after its fault was healed, each with what the others saw: not
    /// a lost write, but a cluster that did not heal by itself (the nemesis restarted the node to go on).
    /// </summary>
    public IReadOnlyList<string> StuckAfterHeal
    {
        get
        {
            lock (_stuck)
            {
                return _stuck.ToList();
            }
        }
    }

    public IReadOnlyList<InjectedFault> Faults
    {
        get
        {
            lock (_faults)
            {
                return _faults.ToList();
            }
        }
    }

    /// <summary>When the last episode's faults were healed and its host a member again (the run's clock).</summary>
    public double LastHealedAtS { get; private set; }

    /// <summary>Plays episodes until <paramref name="runFor"/> has passed (an episode under way is finished first).</summary>
    public async Task RunAsync(IReadOnlyList<ChaosEpisode> episodes, TimeSpan runFor, CancellationToken ct)
    {
        foreach (var episode in episodes)
        {
            await Task.Delay(TimeSpan.FromSeconds(episode.QuietS), ct);
            if (clock.Elapsed >= runFor)
            {
                return;
            }

            // A host that left on its own since (downed after its heal) comes back first: one host fault at a time.
            foreach (var host in Enumerable.Range(1, cluster.Hosts).Where(h => !cluster.NodeAlive(h)))
            {
                log.WriteLine($"chaos: {clock.Elapsed.TotalSeconds,7:F1} s  h{host} is down before the next fault: {await RejoinAsync(host, ct)}");
            }

            var overlapping = episode.Overlapping is { } second
                ? Task.Run(async () =>
                {
                    await Task.Delay(TimeSpan.FromSeconds(second.OffsetS), ct);
                    await PlayAsync(second, ct);
                }, ct)
                : Task.CompletedTask;
            await PlayAsync(episode.Primary, ct);
            await overlapping;
            LastHealedAtS = clock.Elapsed.TotalSeconds;
        }
    }

    private async Task PlayAsync(PlannedFault fault, CancellationToken ct)
    {
        var host = fault.Host.ToString(CultureInfo.InvariantCulture);
        var injectedAt = clock.Elapsed.TotalSeconds;
        var healedAt = injectedAt;
        var detail = "";
        try
        {
            Inject(fault.Kind, host);
            log.WriteLine($"chaos: {injectedAt,7:F1} s  {Describe(fault)} for {fault.ForS:F1} s");
            await Task.Delay(TimeSpan.FromSeconds(fault.ForS), ct);
            Heal(fault.Kind, host);
            healedAt = clock.Elapsed.TotalSeconds;
            if (NemesisPlan.HostFaults.Contains(fault.Kind))
            {
                detail = await RejoinAsync(fault.Host, ct);
            }
        }
        catch (InvalidOperationException ex)
        {
            detail = ex.Message; // a fault this machine cannot inject (no blkio controller, say): recorded, not fatal
        }

        var recoveredAt = clock.Elapsed.TotalSeconds;
        log.WriteLine($"chaos: {recoveredAt,7:F1} s  healed {Describe(fault)} at {healedAt:F1} s{(detail.Length > 0 ? $": {detail}" : "")}");
        lock (_faults)
        {
            _faults.Add(new InjectedFault(fault.Kind, fault.Host, injectedAt, healedAt, recoveredAt, detail));
        }
    }

    private void Inject(FaultKind kind, string host)
    {
        switch (kind)
        {
            case FaultKind.KillNode: cluster.Script("kill", host); break;
            case FaultKind.CrashHost: cluster.Script("crash", host); break;
            case FaultKind.Partition: cluster.Script("partition", host); break;
            case FaultKind.FreezeHost: cluster.Script("freeze-host", host); break;
            case FaultKind.RestartPostgres: cluster.Script("postgres-stop"); break;
            case FaultKind.SlowDisk: cluster.Script("slow-disk", host); break;
        }
    }

    private void Heal(FaultKind kind, string host)
    {
        switch (kind)
        {
            case FaultKind.Partition: cluster.Script("heal", host); break;
            case FaultKind.FreezeHost: cluster.Script("thaw-host", host); break;
            case FaultKind.RestartPostgres: cluster.Script("postgres-start"); break;
            case FaultKind.SlowDisk: cluster.Script("fast-disk", host); break;
        }
    }

    /// <summary>
    /// Waits until the host is Up with its node alive, starting the node again when it is gone (killed, or it left
    /// after a partition or a thaw: a downed member never comes back on its own). Says what it did.
    /// </summary>
    private async Task<string> RejoinAsync(int host, CancellationToken ct)
    {
        var waited = Stopwatch.StartNew();
        var restarted = false;
        var upInARow = 0;
        var seen = "";
        while (upInARow < UpInARow)
        {
            if (!cluster.NodeAlive(host))
            {
                await Task.Delay(TimeSpan.FromSeconds(1), ct); // its data dir lock and namespace address free up with it
                cluster.Script("restart", host.ToString(CultureInfo.InvariantCulture));
                restarted = true;
                upInARow = 0;
            }
            else if (waited.Elapsed > RejoinPatience)
            {
                // A live node that never becomes Up again is a finding: say so, then start it afresh to go on.
                var finding = $"h{host} alive but not Up {RejoinPatience.TotalSeconds} s after its heal at {clock.Elapsed.TotalSeconds - waited.Elapsed.TotalSeconds:F1} s (last seen: {seen})";
                lock (_stuck)
                {
                    _stuck.Add(finding);
                }

                log.WriteLine($"chaos: {finding}: crashing it to restart");
                cluster.Script("crash", host.ToString(CultureInfo.InvariantCulture));
                waited.Restart();
                continue;
            }

            var states = await AnyOtherHostsViewAsync(host);
            seen = states is null ? "no host answered" : string.Join(", ", states.Select(s => $"{s.Key} {s.Value}"));
            upInARow = states is not null && states.TryGetValue($"h{host}", out var state) && state == "Up" && cluster.NodeAlive(host) ? upInARow + 1 : 0;
            await Task.Delay(TimeSpan.FromSeconds(1), ct);
        }

        return restarted ? $"node restarted, Up after {waited.Elapsed.TotalSeconds:F1} s" : "";
    }

    private async Task<IReadOnlyDictionary<string, string>?> AnyOtherHostsViewAsync(int host)
    {
        foreach (var other in Enumerable.Range(1, cluster.Hosts).Where(h => h != host))
        {
            if (await cluster.HostStatesAsync(other) is { } states)
            {
                return states;
            }
        }

        return null;
    }

    private static string Describe(PlannedFault fault) => fault.Kind switch
    {
        FaultKind.RestartPostgres => "postgres stopped",
        _ => $"{fault.Kind} h{fault.Host}",
    };
}
