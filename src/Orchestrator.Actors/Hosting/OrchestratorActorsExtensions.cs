using Akka.Actor;
using Akka.Configuration;
using Akka.Pattern;
using Akka.Cluster;
using Akka.Cluster.Tools.Singleton;
using Akka.Event;
using Akka.Hosting;
using Orchestrator.Actors.Hosts;
using Orchestrator.Actors.Persistence;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Settings;
using Orchestrator.Hypervisor;

namespace Orchestrator.Actors.Hosting;

/// <summary>Registry key for the scheduler singleton's proxy (present on every node).</summary>
public sealed class SchedulerProxy
{
}

/// <summary>Registry key for this node's image store (every node).</summary>
public sealed class ImageStore
{
}

/// <summary>Registry key for this node's host agent (host role only).</summary>
public sealed class HostAgent
{
}

public static class OrchestratorActorsExtensions
{
    /// <summary>
    /// Joins the cluster's seeds when the actor system starts (see <see cref="JoinCluster"/>). A node with no seed
    /// nodes that may bootstrap joins itself: the embedded single-node default.
    /// </summary>
    public static AkkaConfigurationBuilder JoinOrchestratorCluster(this AkkaConfigurationBuilder builder, MembershipSettings settings) =>
        builder.WithActors((system, _) => JoinCluster(system, settings));

    /// <summary>
    /// The store's setup that HOCON cannot say: on SQLite, the read journal's queries go through
    /// <see cref="SqliteTagAggregateRewrite"/> (each event's tags by key, not by a scan of the tag table).
    /// </summary>
    public static AkkaConfigurationBuilder AddStoreSetup(this AkkaConfigurationBuilder builder, Config config)
    {
        var query = config.GetConfig("akka.persistence.query.journal.sql");
        var provider = query?.GetString("provider-name", "") ?? "";
        if (provider.StartsWith("SQLite", StringComparison.OrdinalIgnoreCase))
        {
            builder.AddSetup(SqliteTagAggregateRewrite.ReadJournalSetup(provider, query!.GetString("connection-string", "")));
        }

        return builder;
    }

    /// <summary>
    /// The scheduler: a cluster singleton among the nodes with <paramref name="role"/> (started here only when this
    /// node has it), and on every node its proxy, registered as <see cref="SchedulerProxy"/>.
    /// </summary>
    public static AkkaConfigurationBuilder AddScheduler(
        this AkkaConfigurationBuilder builder, OrchestratorSettings settings, string role = OrchestratorRoles.Control)
    {
        return builder.WithActors((system, registry) =>
        {
            if (settings.Roles.Contains(role))
            {
                // A journal that fails a write stops the scheduler (persist before reply): the backoff supervisor starts
                // it again, recovering from the journal once the store answers. Requests meanwhile time out (503).
                var scheduler = BackoffSupervisor.Props(Backoff.OnStop(
                    SchedulerActor.Props(settings.Scheduler.Rules(settings.Images), settings.Scheduler.SnapshotEvery, settings.Cluster.HostLoss,
                        HostLeases(settings),
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
                        ClusterSingletonManagerSettings.Create(system).WithRole(role).WithSingletonName(SchedulerActor.Name)),
                    SchedulerActor.Name);
            }

            var proxy = system.ActorOf(
                ClusterSingletonProxy.Props(
                    $"/user/{SchedulerActor.Name}",
                    ClusterSingletonProxySettings.Create(system).WithRole(role).WithSingletonName(SchedulerActor.Name)),
                "scheduler-proxy");
            registry.Register<SchedulerProxy>(proxy);
        });
    }

    /// <summary>
    /// The image store, on every node (the node an import went through holds its file, host or not), registered as
    /// <see cref="ImageStore"/>: serves the imported images' files to peers and fetches those a VM here needs. Comes before
    /// <see cref="AddHostAgent"/>, whose VMs ask it.
    /// </summary>
    public static AkkaConfigurationBuilder AddImageStore(this AkkaConfigurationBuilder builder, OrchestratorSettings settings) =>
        builder.WithActors((system, registry) =>
            registry.Register<ImageStore>(system.ActorOf(Images.ImageStoreActor.Props(settings.EffectiveImageImport.Store), Images.ImageStoreActor.Name)));

    /// <summary>
    /// The host agent, on a node with the host role: the simulated hosts' actor for the simulated driver, else a
    /// <see cref="HostAgentActor"/> over the driver <paramref name="createDriver"/> makes. Registered as
    /// <see cref="HostAgent"/>; talks to the scheduler through <see cref="AddScheduler"/>'s proxy, so comes after it.
    /// </summary>
    public static AkkaConfigurationBuilder AddHostAgent(
        this AkkaConfigurationBuilder builder, OrchestratorSettings settings, Func<IHypervisor> createDriver)
    {
        return builder.WithActors((system, registry) =>
        {
            if (!settings.IsHost)
            {
                return;
            }

            var proxy = registry.Get<SchedulerProxy>();
            var agent = settings.Host.Driver == SimulatedHostsActor.Driver
                ? system.ActorOf(SimulatedHostsActor.Props(settings.Host, settings.HostId, proxy), SimulatedHostsActor.Name)
                : system.ActorOf(
                    HostAgentActor.Props(settings.Host, settings.HostId, createDriver(), proxy, settings.Images, HostLeases(settings),
                        registry.TryGet<ImageStore>(out var imageStore) ? imageStore : null),
                    HostAgentActor.Name);
            registry.Register<HostAgent>(agent);
        });
    }

    /// <summary>Each user gets its own store: it holds only the connection string and whether the table exists.</summary>
    private static HostLeaseStore? HostLeases(OrchestratorSettings settings) =>
        settings.HostLeaseConnection is { } connection ? new HostLeaseStore(connection) : null;

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
