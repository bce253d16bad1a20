using System.Diagnostics;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Orchestrator.Actors.Persistence;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Cli;
using Orchestrator.Node;
using Orchestrator.Simulation;

namespace Orchestrator.Tools.Bench;

/// <summary>
/// <c>orchestrator scale --nodes N</c>: N node processes on this machine in one cluster, sharing one SQLite journal,
/// each offering its share of the hosts through the simulated driver (hosts whose VMs exist only in memory). VMs are
/// created through the nodes' HTTP API, so every request crosses the API, the singleton proxy, the scheduler, the
/// journal and, for its start, the remote host agent. Then it kills the node holding the scheduler and times until a
/// survivor answers again, and how much of that was the scheduler's recovery from its snapshot and journal.
/// </summary>
public static partial class ClusterScaleBenchmark
{
    private const int InFlight = 256;

    public sealed record Report(
        int Nodes, int Hosts, int Vms, int Placed, double PlacementsPerS, long SchedulerRssBeforeBytes, long SchedulerRssAfterBytes,
        double RssBytesPerVm, long SnapshotBytes, double SnapshotBytesPerVm, long JournalTailEvents, double KillToAnswerS,
        double? RecoveryS, string? RecoveredOn);

    public static async Task<int> RunAsync(ScaleOptions o, CancellationToken ct)
    {
        var table = o.Output == OutputFormat.Table;
        var root = o.DataDirectory ?? Directory.CreateTempSubdirectory("orscale").FullName;
        var journal = Path.Combine(root, "journal.db");
        var ports = Enumerable.Range(0, o.Nodes).Select(_ => Checkout.FreePort()).ToArray();
        var nodes = new List<LocalNode>();
        // 1-vCPU, 1-GiB VMs on hosts sized to hold their share, as the in-process scale run.
        var perHost = (o.Vms + o.Hosts - 1) / o.Hosts;
        try
        {
            for (var i = 0; i < o.Nodes; i++)
            {
                var share = o.Hosts / o.Nodes + (i < o.Hosts % o.Nodes ? 1 : 0);
                var args = new List<string>
                {
                    "--config", Path.Combine(Checkout.Root(), "cluster", "cluster.conf"),
                    "--set", $"orchestrator.host-id=n{i + 1}",
                    "--set", $"orchestrator.cluster.port={ports[i]}",
                    "--set", $"orchestrator.persistence.sqlite-file=\"{journal}\"",
                    "--set", "orchestrator.host.driver=simulated",
                    "--set", $"orchestrator.host.simulated-hosts={share}",
                    "--set", $"orchestrator.host.cpus={Math.Max(1, perHost)}",
                    "--set", $"orchestrator.host.memory-mib={Math.Max(1, perHost) * 1024L}",
                    "--set", $"orchestrator.scheduler.snapshot-every={o.SnapshotEvery}",
                    "--set", "orchestrator.scheduler.strategy=pack",
                    // One tenant (the admin's) sends every request: the per-tenant rate limit would measure itself.
                    "--set", "orchestrator.api.rate-limit.requests-per-second=1000000",
                    "--set", "orchestrator.api.rate-limit.burst=1000000",
                };
                args.AddRange(ports.SelectMany(p => new[] { "--seed", $"akka.tcp://orchestrator@127.0.0.1:{p}" }));
                if (i == 0)
                {
                    args.Add("--bootstrap"); // the oldest member: the scheduler singleton starts here
                }

                nodes.Add(await LocalNode.StartAsync(Path.Combine(root, $"n{i + 1}"), args, ct));
            }

            if (table)
            {
                Console.WriteLine($"scale: {o.Nodes} node processes here, {o.Hosts} simulated hosts of {Math.Max(1, perHost)} vCPUs / {Math.Max(1, perHost)} GiB " +
                                  $"spread over them, {o.Vms} VMs of 1 vCPU / 1 GiB through their HTTP API; journal {journal}");
            }

            var scheduler = nodes[0];
            await BenchHttp.Until(async () => (int?)(await BenchHttp.GetObject(scheduler, "v1/capacity"))?["hostsUp"] == o.Hosts,
                TimeSpan.FromMinutes(5), $"{o.Hosts} hosts Up", ct,
                async () => $"{(await BenchHttp.GetObject(scheduler, "v1/capacity"))?["hostsUp"]} are");
            var rssBefore = Rss(scheduler.Pid);

            var (placed, seconds) = await CreateVmsAsync(nodes, o.Vms, table, ct);
            var rssAfter = Rss(scheduler.Pid);
            if (table)
            {
                Console.WriteLine($"placed                 {placed:N0} of {o.Vms:N0} in {seconds:0.0} s ({placed / seconds:N0} placements/s through the API, {InFlight} in flight)");
                Console.WriteLine($"scheduler node memory  {(rssAfter - rssBefore) / (double)o.Vms:N0} bytes per VM (RSS of its whole process: " +
                                  $"{rssBefore / 1048576.0:N0} → {rssAfter / 1048576.0:N0} MiB)");
            }

            var (snapshotBytes, snapshotRows, tail) = StoredSnapshot(journal);
            if (table)
            {
                Console.WriteLine($"snapshots              {snapshotBytes / 1048576.0:N1} MiB in {snapshotRows} row(s): a whole one and the incremental ones after it " +
                                  $"({snapshotBytes / (double)Math.Max(1, o.Vms):N0} bytes per VM); {tail:N0} journal events after the latest");
            }

            // The scheduler's node dies at once; a survivor answers once the cluster downed it and the singleton recovered there.
            var clock = Stopwatch.StartNew();
            scheduler.KillHost();
            var survivor = nodes[1];
            await BenchHttp.Until(async () => await BenchHttp.GetObject(survivor, "v1/vms/s0") is not null, TimeSpan.FromMinutes(5),
                "a survivor to answer again", ct);
            var killToAnswer = clock.Elapsed.TotalSeconds;
            var recovered = nodes.Skip(1).Select(n => (Node: n, Line: Recovery(Path.Combine(n.DataDir, "node.log"))))
                .Select(r => (r.Node, Seconds: r.Line?.Seconds, Phases: r.Line?.Phases))
                .FirstOrDefault(r => r.Seconds is not null);
            var recoveredOn = recovered.Node is null ? null : Path.GetFileName(recovered.Node.DataDir);
            if (table)
            {
                Console.WriteLine($"failover               killed the scheduler's node; a survivor answered {killToAnswer:0.00} s later " +
                                  "(failure detection, downing, singleton handover, recovery)");
                Console.WriteLine(recovered.Seconds is { } s
                    ? $"recovery               {s:0.000} s on {recoveredOn}: the scheduler's snapshots + {tail:N0} journal events + indexes (target ≤ 5 s);\n" +
                      $"                       {recovered.Phases}"
                    : "recovery               not found in the survivors' logs");
            }

            var report = new Report(o.Nodes, o.Hosts, o.Vms, placed, Math.Round(placed / seconds, 1), rssBefore, rssAfter,
                Math.Round((rssAfter - rssBefore) / (double)o.Vms, 1), snapshotBytes, Math.Round(snapshotBytes / (double)Math.Max(1, o.Vms), 1),
                tail, Math.Round(killToAnswer, 3), recovered.Seconds, recoveredOn);
            if (!table)
            {
                Console.WriteLine(JsonSerializer.Serialize(report, new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true }));
            }

            return placed == o.Vms ? 0 : 1;
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException or HttpRequestException)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return 1;
        }
        finally
        {
            foreach (var node in nodes)
            {
                await node.DisposeAsync();
            }

            if (o.DataDirectory is null)
            {
                try
                {
                    Directory.Delete(root, recursive: true);
                }
                catch (IOException)
                {
                }
            }
        }
    }

    private static async Task<(int Placed, double Seconds)> CreateVmsAsync(IReadOnlyList<LocalNode> nodes, int vms, bool progress,
        CancellationToken ct)
    {
        var placed = 0;
        var failure = (string?)null;
        using var gate = new SemaphoreSlim(InFlight);
        var clock = Stopwatch.StartNew();
        var tasks = new List<Task>();
        for (var i = 0; i < vms && Volatile.Read(ref failure) is null; i++)
        {
            await gate.WaitAsync(ct);
            var node = nodes[i % nodes.Count];
            var body = $$"""{"name":"s{{i}}","vcpus":1,"memoryMiB":1024,"image":"demo","restartPolicy":"never"}""";
            tasks.Add(Task.Run(async () =>
            {
                try
                {
                    using var response = await node.Http.PostAsync("v1/vms", BenchHttp.JsonContent(body), ct);
                    var text = await response.Content.ReadAsStringAsync(ct);
                    if ((int)response.StatusCode == 201 && JsonDocument.Parse(text).RootElement.GetProperty("host").ValueKind == JsonValueKind.String)
                    {
                        Interlocked.Increment(ref placed);
                    }
                    else
                    {
                        Interlocked.CompareExchange(ref failure, $"{(int)response.StatusCode} {text}", null);
                    }
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                {
                    Interlocked.CompareExchange(ref failure, ex.Message, null);
                }
                finally
                {
                    gate.Release();
                }
            }, ct));
            if (tasks.Count >= 4096)
            {
                tasks.RemoveAll(t => t.IsCompleted);
            }

            if (progress && (i + 1) % 100_000 == 0)
            {
                Console.WriteLine($"  {i + 1,9:N0} VMs sent, {clock.Elapsed.TotalSeconds,6:0.0} s");
            }
        }

        await Task.WhenAll(tasks);
        if (failure is not null)
        {
            throw new InvalidOperationException($"a create failed: {failure}");
        }

        return (placed, clock.Elapsed.TotalSeconds);
    }

    private static long Rss(int pid) => Hypervisor.ProcStat.ReadResidentBytes(pid) ?? 0;

    /// <summary>The scheduler's stored snapshots (a whole one and the incremental ones after it): bytes, rows, events after the latest.</summary>
    private static (long Bytes, long Rows, long Tail) StoredSnapshot(string journal)
    {
        using var snapshots = new SqliteConnection($"Data Source={SqliteSnapshotFile.PathFor(journal)};Mode=ReadOnly");
        snapshots.Open();
        using var stored = snapshots.CreateCommand();
        stored.CommandText = """
            SELECT COALESCE(SUM(length(snapshot)), 0), COALESCE(MAX(sequence_number), 0), COUNT(*) FROM snapshot WHERE persistence_id = $id
            """;
        stored.Parameters.AddWithValue("$id", SchedulerActor.Name);
        using var snapshot = stored.ExecuteReader();
        snapshot.Read();

        using var journalConnection = new SqliteConnection($"Data Source={journal};Mode=ReadOnly");
        journalConnection.Open();
        using var last = journalConnection.CreateCommand();
        last.CommandText = "SELECT COALESCE(MAX(sequence_number), 0) FROM journal WHERE persistence_id = $id";
        last.Parameters.AddWithValue("$id", SchedulerActor.Name);
        var lastEvent = (long)last.ExecuteScalar()!;
        return (snapshot.GetInt64(0), snapshot.GetInt64(2), lastEvent - snapshot.GetInt64(1));
    }

    /// <summary>The scheduler's recovery in the node's log: its seconds, and its phases (snapshot read, state rebuilt, replay, indexes).</summary>
    private static (double Seconds, string Phases)? Recovery(string log)
    {
        if (!File.Exists(log))
        {
            return null;
        }

        using var stream = new FileStream(log, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        return RecoveryPhases.Find(reader.ReadToEnd());
    }
}
