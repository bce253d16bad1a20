// What the placement tools take from their command line (parsed by orchestrator-tools).
using Orchestrator.Cli;

namespace Orchestrator.Simulation;

/// <summary>Options of <c>orchestrator simulate</c>.</summary>
/// <param name="HostSize">CPU[,MEMORY_GIB] per host, as typed (null: the trace's capacity, or 48,384).</param>
/// <param name="Policy">A placement strategy of the scheduler (pack, spread).</param>
public sealed record SimulateOptions(
    string Trace, int? Hosts, string? HostSize, string Policy, bool Durable, OutputFormat Output, string? Plot);

/// <summary>Options of <c>orchestrator bench placement</c> (in memory) and <c>bench durable</c> (scheduler actor on SQLite).</summary>
/// <param name="Rate">Requests per second offered (0: as fast as it goes, a closed loop of <paramref name="Concurrency"/>).</param>
/// <param name="SnapshotEvery">events between the scheduler's snapshots (durable only), as `orchestrator.scheduler.snapshot-every`.</param>
public sealed record BenchOptions(
    bool Durable, int Hosts, int Requests, int Rate, int Concurrency, string Policy, string? DataDirectory, OutputFormat Output,
    string Store = "sqlite", int SnapshotEvery = 100_000);

/// <summary>Options of <c>orchestrator scale</c>: simulated hosts and VMs through the scheduler actor, then recovery.</summary>
/// <param name="Nodes">1: the scheduler actor in this process; more: that many node processes here, in a cluster, with the
/// simulated driver, driven through their HTTP API.</param>
/// <param name="Recover">place nothing: start a scheduler on the ledger an earlier run left in <paramref name="DataDirectory"/>
/// and time its recovery in this fresh process (cold: none of its code run before, nothing of the file cached by it).</param>
public sealed record ScaleOptions(int Hosts, int Vms, int SnapshotEvery, string? DataDirectory, OutputFormat Output, int Nodes = 1,
    bool Recover = false);
