using System.Diagnostics;
using System.Text.Json;
using Akka.Actor;
using Akka.Persistence;
using Orchestrator.Actors.Persistence;
using Orchestrator.Actors.Scheduler;
using Microsoft.Data.Sqlite;
using Orchestrator.Cli;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Placement;

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
        double StateFromRecordsS, double JournalTailReadS, double JournalTailApplyS);

    /// <summary>
    /// What <c>scale --recover</c> measured: a scheduler's recovery in a fresh process from a kept ledger (cold), then
    /// another in the same process, its scheduler stopped and started again (warm: its code compiled, the files cached).
    /// </summary>
    /// <param name="CpuS">the process's CPU time (all threads) until the first answer.</param>
    /// <param name="Collections">garbage collections of generations 0, 1 and 2 until the first answer.</param>
    /// <param name="WarmFirstAnswerS">the warm recovery's time to its first answer; <paramref name="WarmRecoveryS"/> and
    /// <paramref name="WarmPhases"/> its scheduler's own account, <paramref name="WarmVms"/> the VMs it then listed.</param>
    public sealed record RecoveryReport(string Store, long DatabaseBytes, int Hosts, int Vms, double FirstAnswerS, double? RecoveryS, string? Phases,
        double CpuS, int[] Collections, double GcPauseS, double WarmFirstAnswerS, double? WarmRecoveryS, string? WarmPhases, int WarmVms);

    public static async Task<int> RunAsync(ScaleOptions o, CancellationToken ct)
    {
        if (o.Recover)
        {
            return await RecoverAsync(o);
        }

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
                if (t.Result is SchedulerReplies.VmAccepted { Vm.Host: not null })
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

        var recovery = await durable.RestartAsync();
        // Where recovery time went, measured apart (after it, so that it ran cold) on the snapshot the scheduler stored:
        // reading its row, deserializing it, rebuilding the ledger state from its records. The rest is the journal after it.
        // The scheduler goes first, so that its ledger does not weigh on these figures' garbage collections.
        await durable.Scheduler.GracefulStop(TimeSpan.FromMinutes(2));
        Heap();
        var stored = await StoredSnapshot.MeasureAsync(durable.System, durable.DatabaseFile, SchedulerActor.Name);
        var report = new Report(
            o.Hosts, o.Vms, placed, Math.Round(o.Vms / wall.Elapsed.TotalSeconds), Math.Round(wall.Elapsed.TotalSeconds, 2),
            heapHosts, heapAll, Math.Round((heapAll - heapHosts) / (double)o.Vms, 1), snapshotBytes,
            Math.Round(snapshotBytes / (double)o.Vms, 1), stored.TailEvents, Math.Round(recovery.TotalSeconds, 3),
            StoreBytes(durable.DatabaseFile), "SQLite " + durable.DatabaseFile, stored.Bytes, Math.Round(stored.RowReadS, 3),
            Math.Round(stored.DeserializeS, 3), Math.Round(stored.FromRecordsS, 3), Math.Round(stored.TailReadS, 3), Math.Round(stored.TailApplyS, 3));
        if (o.Output == OutputFormat.Json)
        {
            Console.WriteLine(JsonSerializer.Serialize(report, SimulateCommand.Json));
        }
        else
        {
            Console.WriteLine($"placed                 {report.Placed:N0} of {report.Vms:N0} in {report.WallPlaceS:0.0} s ({report.PlacementsPerS:N0} placements/s, durable)");
            Console.WriteLine($"memory per allocation  {report.BytesPerAllocation:N0} bytes (managed heap after - before, whole process: {heapHosts / 1048576.0:N0} → {heapAll / 1048576.0:N0} MiB)");
            Console.WriteLine($"snapshot size          {report.SnapshotBytes / 1048576.0:N1} MiB ({report.BytesPerVmInSnapshot:N0} bytes per VM)");
            Console.WriteLine($"recovery               {report.RecoveryS:0.000} s from the latest snapshot + {report.JournalTailEvents:N0} journal events (target ≤ 5 s); " +
                              "the process's first, so its code is compiled as it runs (`scale --recover` times a fresh process, then a warm restart)");
            Console.WriteLine($"  measured apart after it, on the stored snapshots ({report.StoredSnapshotBytes / 1048576.0:N1} MiB, {stored.Rows} row(s): " +
                "a whole one and the incremental ones after it): " +
                $"row read {report.SnapshotRowReadS:0.000} s, deserialization {report.SnapshotDeserializeS:0.000} s, " +
                $"merged and LedgerState.FromRecords {report.StateFromRecordsS:0.000} s,");
            Console.WriteLine($"  journal tail read {report.JournalTailReadS:0.000} s, applied {report.JournalTailApplyS:0.000} s");
            Console.WriteLine($"database               {report.DatabaseBytes / 1048576.0:N0} MiB");
        }

        return 0;
    }

    /// <summary>
    /// A scheduler started in this process on the ledger an earlier run left in --data: the time to its first answer, and
    /// its own account of the recovery. Run in a fresh process, that is a cold recovery, as on a node that takes over.
    /// </summary>
    private static async Task<int> RecoverAsync(ScaleOptions o)
    {
        var directory = o.DataDirectory!;
        var file = Path.Combine(directory, "orchestrator.db");
        if (!File.Exists(file))
        {
            Console.Error.WriteLine($"scale --recover: no ledger in {directory} (no orchestrator.db there); run `scale --data {directory}` first");
            return 2;
        }

        var databaseBytes = StoreBytes(file);
        await using var durable = DurableScheduler.Recover(directory, o.SnapshotEvery);
        var answered = await durable.FirstAnswerAsync();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        int[] collections = [GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2)];
        var paused = GC.GetTotalPauseDuration();
        var line = RecoveryPhases.Find(await durable.RecoveryLines!.ReadAsync().AsTask().WaitAsync(TimeSpan.FromMinutes(1)));
        var hosts = await durable.Scheduler.Ask<SchedulerReplies.HostList>(SchedulerQueries.ListHosts.Instance, TimeSpan.FromMinutes(5));
        var vms = await durable.Scheduler.Ask<SchedulerReplies.VmList>(new SchedulerQueries.ListVms(null), TimeSpan.FromMinutes(5));
        var (hostCount, vmCount) = (hosts.Hosts.Count, vms.Vms.Count);
        hosts = null;
        vms = null;

        // Warm: the same ledger again, in this process. The ledger the first scheduler held is garbage when the second
        // starts, as on a node whose scheduler stopped and started again; nothing collects it first.
        var warmAnswered = await durable.RestartAsync();
        var warm = RecoveryPhases.Find(await durable.RecoveryLines.ReadAsync().AsTask().WaitAsync(TimeSpan.FromMinutes(1)));
        var warmVms = (await durable.Scheduler.Ask<SchedulerReplies.VmList>(new SchedulerQueries.ListVms(null), TimeSpan.FromMinutes(5))).Vms.Count;
        var report = new RecoveryReport("SQLite " + file, databaseBytes, hostCount, vmCount, Math.Round(answered.TotalSeconds, 3),
            line?.Seconds, line?.Phases, Math.Round(cpu.TotalSeconds, 3), collections, Math.Round(paused.TotalSeconds, 3),
            Math.Round(warmAnswered.TotalSeconds, 3), warm?.Seconds, warm?.Phases, warmVms);
        if (o.Output == OutputFormat.Json)
        {
            Console.WriteLine(JsonSerializer.Serialize(report, SimulateCommand.Json));
        }
        else
        {
            Console.WriteLine($"recovered              {report.Hosts:N0} hosts, {report.Vms:N0} VMs from {report.Store} ({databaseBytes / 1048576.0:N0} MiB), in this fresh process");
            Console.WriteLine($"first answer           {report.FirstAnswerS:0.000} s after the scheduler started");
            Console.WriteLine(line is { } l ? $"scheduler's recovery   {l.Seconds:0.000} s: {l.Phases}" : "scheduler's recovery   no line heard");
            Console.WriteLine($"process until then     CPU {report.CpuS:0.000} s (all threads, with its start); collections gen0 {collections[0]}, " +
                              $"gen1 {collections[1]}, gen2 {collections[2]}, paused {report.GcPauseS:0.000} s");
            Console.WriteLine($"again, warm            first answer {report.WarmFirstAnswerS:0.000} s; " +
                              (warm is { } w ? $"scheduler's recovery {w.Seconds:0.000} s: {w.Phases}" : "no line heard") +
                              $" (its scheduler stopped and started again in this process; {report.WarmVms:N0} VMs)");
        }

        return 0;
    }

    /// <summary>The store's size on disk: the journal's file and the snapshots' beside it, without their write-ahead logs.</summary>
    private static long StoreBytes(string journalFile) =>
        new FileInfo(journalFile).Length + (File.Exists(SqliteSnapshotFile.PathFor(journalFile)) ? new FileInfo(SqliteSnapshotFile.PathFor(journalFile)).Length : 0);

    /// <summary>
    /// The scheduler's latest stored snapshot (back along its chain to a whole one) and the journal after it, read and rebuilt
    /// the way recovery does, each step timed: the snapshots' rows, their deserialization, the state from their merged
    /// records, the journal's events after them (read and deserialized by the journal), and their Apply.
    /// </summary>
    private sealed record StoredSnapshot(long Bytes, int Rows, double RowReadS, double DeserializeS, double FromRecordsS, long TailEvents,
        double TailReadS, double TailApplyS)
    {
        public static async Task<StoredSnapshot> MeasureAsync(ActorSystem system, string databaseFile, string persistenceId)
        {
            var reading = new Stopwatch();
            var deserializing = new Stopwatch();
            var snapshots = new List<LedgerSnapshot>();
            long bytes = 0;
            long sequenceNr = 0; // the latest snapshot's: the journal after it is replayed
            using (var connection = new SqliteConnection($"Data Source={SqliteSnapshotFile.PathFor(databaseFile)};Mode=ReadOnly"))
            {
                connection.Open();
                long? at = long.MaxValue;
                while (at is { } upTo)
                {
                    reading.Start();
                    using var command = connection.CreateCommand();
                    command.CommandText = """
                        SELECT snapshot, manifest, serializer_id, sequence_number FROM snapshot
                        WHERE persistence_id = $id AND sequence_number <= $at ORDER BY sequence_number DESC LIMIT 1
                        """;
                    command.Parameters.AddWithValue("$id", persistenceId);
                    command.Parameters.AddWithValue("$at", upTo);
                    using var row = command.ExecuteReader();
                    if (!row.Read())
                    {
                        return new StoredSnapshot(0, 0, 0, 0, 0, 0, 0, 0); // fewer events than --snapshot-every: recovery is all journal
                    }

                    var payload = row.GetFieldValue<byte[]>(0);
                    sequenceNr = Math.Max(sequenceNr, row.GetInt64(3));
                    reading.Stop();
                    bytes += payload.LongLength;
                    deserializing.Start();
                    snapshots.Add((LedgerSnapshot)system.Serialization.Deserialize(payload, row.GetInt32(2), row.GetString(1)));
                    deserializing.Stop();
                    at = snapshots[^1].Delta?.PreviousSequenceNr;
                }
            }

            var readS = reading.Elapsed.TotalSeconds;
            var deserializeS = deserializing.Elapsed.TotalSeconds;
            var watch = Stopwatch.StartNew();
            var whole = IncrementalSnapshots.Merge(snapshots[^1], snapshots[..^1].AsEnumerable().Reverse().ToList());

            var state = LedgerState.FromRecords(whole.Hosts, whole.Vms, whole.Tenants, whole.Keys, whole.Webhooks, whole.Rules);
            var fromRecordsS = watch.Elapsed.TotalSeconds;

            watch.Restart();
            var replayed = new TaskCompletionSource<List<ILedgerEvent>>(TaskCreationOptions.RunContinuationsAsynchronously);
            var collector = system.ActorOf(Props.Create(() => new TailCollector(replayed)));
            Akka.Persistence.Persistence.Instance.Apply(system).JournalFor(null)
                .Tell(new ReplayMessages(sequenceNr + 1, long.MaxValue, long.MaxValue, persistenceId, collector));
            var tail = await replayed.Task.WaitAsync(TimeSpan.FromMinutes(5));
            var tailReadS = watch.Elapsed.TotalSeconds;
            watch.Restart();
            foreach (var evt in tail)
            {
                state = state.Apply(evt);
            }

            var tailApplyS = watch.Elapsed.TotalSeconds;
            GC.KeepAlive(state);
            return new StoredSnapshot(bytes, snapshots.Count, readS, deserializeS, fromRecordsS, tail.Count, tailReadS, tailApplyS);
        }
    }

    /// <summary>Takes the events the journal replays, and hands them over when it says it is done.</summary>
    private sealed class TailCollector(TaskCompletionSource<List<ILedgerEvent>> replayed) : UntypedActor
    {
        private readonly List<ILedgerEvent> _events = [];

        protected override void OnReceive(object message)
        {
            switch (message)
            {
                case ReplayedMessage { Persistent.Payload: ILedgerEvent evt }:
                    _events.Add(evt);
                    break;
                case RecoverySuccess:
                    replayed.TrySetResult(_events);
                    Context.Stop(Self);
                    break;
                case ReplayMessagesFailure failure:
                    replayed.TrySetException(failure.Cause);
                    Context.Stop(Self);
                    break;
            }
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
