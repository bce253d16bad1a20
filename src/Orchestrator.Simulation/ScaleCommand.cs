using System.Text.Json;
using Akka.Actor;
using Orchestrator.Actors.Scheduler;
using Microsoft.Data.Sqlite;
using Orchestrator.Cli;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Placement;
using Stopwatch = System.Diagnostics.Stopwatch;

namespace Orchestrator.Simulation;

/// <summary>
/// <c>orchestrator scale</c>: simulated hosts (in memory only) and many VMs placed through the scheduler actor on
/// SQLite, then what that costs: managed memory per allocation in the scheduler, the snapshot's size, and how long the
/// scheduler takes to recover from its snapshot and the journal after it.
/// </summary>
public static class ScaleCommand
{
    public sealed record Report(
        int Hosts, int Vms, int Placed, double PlacementsPerS, double WallPlaceS, long HeapBytesHosts, long HeapBytesAll,
        double BytesPerAllocation, long SnapshotBytes, double BytesPerVmInSnapshot, long JournalTailEvents, double RecoveryS,
        long DatabaseBytes, string Store, long StoredSnapshotBytes, double SnapshotRowReadS, double SnapshotDeserializeS,
        double StateFromRecordsS);

    public static async Task<int> RunAsync(ScaleOptions o, CancellationToken ct)
    {
        var table = o.Output == OutputFormat.Table;
        await using var durable = DurableScheduler.Create(o.DataDirectory, PlacementStrategy.Pack, o.SnapshotEvery);
        // Room for every VM: 1-vCPU, 1-GiB VMs on hosts sized to hold their share.
        var perHost = (o.Vms + o.Hosts - 1) / o.Hosts;
        var cpus = Math.Max(1, perHost);
        var memoryMiB = (long)perHost * 1024;
        if (table)
        {
            Console.WriteLine($"scale: {o.Hosts} simulated hosts (in memory only) of {cpus} vCPUs / {memoryMiB / 1024} GiB, {o.Vms} VMs of 1 vCPU / 1 GiB,");
            Console.WriteLine($"       through the scheduler actor on SQLite ({durable.DatabaseFile}), snapshot every {o.SnapshotEvery} events");
        }

        await durable.RegisterHostsAsync(o.Hosts, cpus, memoryMiB);
        var heapHosts = Heap();
        var placed = 0;
        var gate = new SemaphoreSlim(2048);
        var tasks = new List<Task>(1024);
        var wall = Stopwatch.StartNew();
        for (var i = 0; i < o.Vms; i++)
        {
            ct.ThrowIfCancellationRequested();
            await gate.WaitAsync(ct);
            tasks.Add(durable.AskAsync(DurableScheduler.Create(i, 1, 1024)).ContinueWith(t =>
            {
                if (t.Result is SchedulerReplies.Accepted { Vm.Host: not null })
                {
                    Interlocked.Increment(ref placed);
                }

                gate.Release();
            }, TaskScheduler.Default));
            if (tasks.Count >= 1024)
            {
                tasks.RemoveAll(t => t.IsCompleted);
            }

            if (table && (i + 1) % 100_000 == 0)
            {
                Console.WriteLine($"       {i + 1,9:N0} VMs sent, {wall.Elapsed.TotalSeconds,6:0.0} s");
            }
        }

        await Task.WhenAll(tasks);
        wall.Stop();
        var heapAll = Heap();

        // The snapshot the scheduler would write now, serialized as it is stored: its size per VM.
        var hosts = await durable.Scheduler.Ask<SchedulerReplies.HostList>(SchedulerQueries.ListHosts.Instance, TimeSpan.FromMinutes(5));
        var vms = await durable.Scheduler.Ask<SchedulerReplies.VmList>(new SchedulerQueries.ListVms(null), TimeSpan.FromMinutes(5));
        var snapshot = new LedgerSnapshot(hosts.Hosts, vms.Vms);
        var snapshotBytes = durable.System.Serialization.FindSerializerFor(snapshot).ToBinary(snapshot).LongLength;
        hosts = null;
        vms = null;
        snapshot = null;

        var events = (long)o.Hosts + 2L * o.Vms;
        var tail = events % o.SnapshotEvery;
        var recovery = await durable.RestartAsync();
        // Where recovery time went, measured apart (after it, so that it ran cold) on the snapshot the scheduler stored:
        // reading its row, deserializing it, rebuilding the ledger state from its records. The rest is the journal after it.
        var stored = StoredSnapshot.Measure(durable.System, durable.DatabaseFile, SchedulerActor.Name);
        var report = new Report(
            o.Hosts, o.Vms, placed, Math.Round(o.Vms / wall.Elapsed.TotalSeconds), Math.Round(wall.Elapsed.TotalSeconds, 2),
            heapHosts, heapAll, Math.Round((heapAll - heapHosts) / (double)o.Vms, 1), snapshotBytes,
            Math.Round(snapshotBytes / (double)o.Vms, 1), tail, Math.Round(recovery.TotalSeconds, 3),
            new FileInfo(durable.DatabaseFile).Length, "SQLite " + durable.DatabaseFile, stored.Bytes, Math.Round(stored.RowReadS, 3),
            Math.Round(stored.DeserializeS, 3), Math.Round(stored.FromRecordsS, 3));
        if (o.Output == OutputFormat.Json)
        {
            Console.WriteLine(JsonSerializer.Serialize(report, SimulateCommand.Json));
        }
        else
        {
            Console.WriteLine($"placed                 {report.Placed:N0} of {report.Vms:N0} in {report.WallPlaceS:0.0} s ({report.PlacementsPerS:N0} placements/s, durable)");
            Console.WriteLine($"memory per allocation  {report.BytesPerAllocation:N0} bytes (managed heap after - before, whole process: {heapHosts / 1048576.0:N0} → {heapAll / 1048576.0:N0} MiB)");
            Console.WriteLine($"snapshot size          {report.SnapshotBytes / 1048576.0:N1} MiB ({report.BytesPerVmInSnapshot:N0} bytes per VM)");
            Console.WriteLine($"recovery               {report.RecoveryS:0.000} s from the latest snapshot + {report.JournalTailEvents:N0} journal events (target ≤ 5 s)");
            var rest = report.RecoveryS - report.SnapshotRowReadS - report.SnapshotDeserializeS - report.StateFromRecordsS;
            Console.WriteLine($"  of which, measured apart on the stored snapshot ({report.StoredSnapshotBytes / 1048576.0:N1} MiB): " +
                $"row read {report.SnapshotRowReadS:0.000} s, deserialization {report.SnapshotDeserializeS:0.000} s, " +
                $"LedgerState.FromRecords {report.StateFromRecordsS:0.000} s; the rest (journal tail, start) ~{rest:0.000} s");
            Console.WriteLine($"database               {report.DatabaseBytes / 1048576.0:N0} MiB");
        }

        return 0;
    }

    /// <summary>The scheduler's latest stored snapshot, read and rebuilt the way recovery does, each step timed.</summary>
    private sealed record StoredSnapshot(long Bytes, double RowReadS, double DeserializeS, double FromRecordsS)
    {
        public static StoredSnapshot Measure(ActorSystem system, string databaseFile, string persistenceId)
        {
            var watch = Stopwatch.StartNew();
            using var connection = new SqliteConnection($"Data Source={databaseFile};Mode=ReadOnly");
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT snapshot, manifest, serializer_id FROM snapshot WHERE persistence_id = $id ORDER BY sequence_number DESC LIMIT 1";
            command.Parameters.AddWithValue("$id", persistenceId);
            using var row = command.ExecuteReader();
            if (!row.Read())
            {
                return new StoredSnapshot(0, 0, 0, 0); // fewer events than --snapshot-every: recovery is all journal
            }

            var payload = row.GetFieldValue<byte[]>(0);
            var manifest = row.GetString(1);
            var serializerId = row.GetInt32(2);
            var readS = watch.Elapsed.TotalSeconds;
            watch.Restart();
            var snapshot = (LedgerSnapshot)system.Serialization.Deserialize(payload, serializerId, manifest);
            var deserializeS = watch.Elapsed.TotalSeconds;
            watch.Restart();
            var state = LedgerState.FromRecords(snapshot.Hosts, snapshot.Vms, snapshot.Tenants, snapshot.Keys, snapshot.Webhooks, snapshot.Rules);
            var fromRecordsS = watch.Elapsed.TotalSeconds;
            GC.KeepAlive(state);
            return new StoredSnapshot(payload.LongLength, readS, deserializeS, fromRecordsS);
        }
    }

    private static long Heap()
    {
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        return GC.GetTotalMemory(forceFullCollection: true);
    }
}
