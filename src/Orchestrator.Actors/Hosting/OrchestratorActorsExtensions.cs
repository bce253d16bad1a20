using Akka.Actor;
using Akka.Pattern;
using Akka.Cluster;
using Akka.Cluster.Tools.Singleton;
using Akka.Event;
using Akka.Hosting;
using Orchestrator.Actors.Hosts;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Settings;
using Orchestrator.Hypervisor;

namespace Orchestrator.Actors.Hosting;

/// <summary>Registry key for the scheduler singleton's proxy (present on every node).</summary>
public sealed class SchedulerProxy
{
}

/// <summary>Registry key for this node's host agent (host role only).</summary>
public sealed class HostAgent
{
}

public static class OrchestratorActorsExtensions
{
    /// <summary>
    /// Starts the node's actors: the scheduler singleton (role control) and its proxy, and the host agent
    /// (role host) with the given driver. A node with no seed nodes joins itself: the embedded single-node default.
    /// </summary>
    public static AkkaConfigurationBuilder AddOrchestrator(
        this AkkaConfigurationBuilder builder, OrchestratorSettings settings, Func<IHypervisor> createDriver)
    {
        return builder.WithActors((system, registry) =>
        {
            JoinCluster(system, settings.Cluster);
            var leases = settings.HostLeaseConnection is { } connection ? new HostLeaseStore(connection) : null;

            if (settings.IsControl)
            {
                // A journal that fails a write stops the scheduler (persist before reply): the backoff supervisor starts
                // it again, recovering from the journal once the store answers. Requests meanwhile time out (503).
                var scheduler = BackoffSupervisor.Props(Backoff.OnStop(
                    SchedulerActor.Props(settings.Scheduler.Rules(settings.Images), settings.Scheduler.SnapshotEvery, settings.Cluster.HostLoss, leases,
                        settings.Scheduler.SharesInterval > TimeSpan.Zero
                            ? new SharesPolicy(settings.Scheduler.SharesInterval, settings.Scheduler.SharesToleranceMillicores)
                            : null,
                        settings.Webhooks ?? Webhooks.WebhookSettings.Default),
                    SchedulerActor.Name,
                    TimeSpan.FromSeconds(1),
                    TimeSpan.FromSeconds(10),
                    0.2,
                    -1)); // retry for as long as it takes
                system.ActorOf(
                    ClusterSingletonManager.Props(
                        scheduler,
                        PoisonPill.Instance,
                        ClusterSingletonManagerSettings.Create(system).WithRole(OrchestratorRoles.Control)
                            .WithSingletonName(SchedulerActor.Name)),
                    SchedulerActor.Name);
            }

            var proxy = system.ActorOf(
                ClusterSingletonProxy.Props(
                    $"/user/{SchedulerActor.Name}",
                    ClusterSingletonProxySettings.Create(system).WithRole(OrchestratorRoles.Control)
                        .WithSingletonName(SchedulerActor.Name)),
                "scheduler-proxy");
            registry.Register<SchedulerProxy>(proxy);

            if (settings.IsHost && settings.Host.Driver == SimulatedHostsActor.Driver)
            {
                registry.Register<HostAgent>(system.ActorOf(SimulatedHostsActor.Props(settings.Host, settings.HostId, proxy), SimulatedHostsActor.Name));
            }
            else if (settings.IsHost)
            {
                var agent = system.ActorOf(
                    HostAgentActor.Props(settings.Host, settings.HostId, createDriver(), proxy, settings.Images, leases),
                    HostAgentActor.Name);
                registry.Register<HostAgent>(agent);
            }
        });
    }

    /// <summary>
    /// Joins the seeds, or forms a new cluster only when told to bootstrap: a node whose seeds don't answer keeps
    /// retrying (Akka logs each attempt) rather than forming a second cluster on its own.
    /// </summary>
    private static void JoinCluster(ActorSystem system, MembershipSettings settings)
    {
        var cluster = Cluster.Get(system);
        var log = Logging.GetLogger(system, typeof(OrchestratorActorsExtensions));
        var seeds = settings.Seeds.Select(Address.Parse).Where(a => !a.Equals(cluster.SelfAddress)).ToList();
        if (settings.Bootstrap)
        {
            seeds.Insert(0, cluster.SelfAddress); // the first seed may form the cluster when no other answers
        }

        if (seeds.Count == 0)
        {
            log.Warning("no seed nodes and bootstrap is off: this node waits; give it --seed or --bootstrap");
            return;
        }

        log.Info("joining the cluster through {0}{1}", string.Join(", ", seeds), settings.Bootstrap ? " (may bootstrap)" : "");
        cluster.JoinSeedNodes(seeds);
    }
}
