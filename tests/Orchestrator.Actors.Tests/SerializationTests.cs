using Akka.Actor;
using Akka.Serialization;
using Akka.TestKit.Xunit2;
using Orchestrator.Actors.Hosts;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Serialization;
using Orchestrator.Domain;
using Orchestrator.Domain.Hosts;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;
using static Orchestrator.Domain.Ledger.LedgerEvents;

namespace Orchestrator.Actors.Tests;

public class SerializationTests() : TestKit(TestConfig.Serialization())
{
    private static readonly VmId Vm = new(Guid.Parse("0f8fad5b-d9cb-469f-a165-70867728950e"));

    private const string VolumeId = "0123456789abcdef0123456789abcdef";

    private static readonly Domain.Storage.VolumeRecord Volume = new(VolumeId, new TenantId("acme"), "data", 5, "local", new HostId("h1"), Vm,
        new DateTimeOffset(2026, 12, 5, 10, 0, 0, TimeSpan.Zero));
    private static readonly Domain.Storage.SnapshotRecord Snapshot = new(VolumeId, new TenantId("acme"), "s1", Vm, VolumeId, null, "local",
        new HostId("h1"), 1, "demo", true, new DateTimeOffset(2026, 12, 5, 10, 0, 0, TimeSpan.Zero));
    private static readonly HostId H = new("host-1");
    private static readonly DateTimeOffset At = new(2026, 11, 24, 1, 2, 3, TimeSpan.Zero);
    private static readonly Domain.Networks.SecurityRule SecurityRuleSample = new("r1", "tcp", 8080, 8090, "10.0.1.0/24", null);
    private static readonly VmSpec Spec = new("web1", 2, 512, "demo", RestartPolicy.Always, Driver: "kvm");

    private static readonly VmRecord Record = new(Vm, new TenantId("acme"), Spec, DesiredState.Running, VmStatus.Ready, null, H,
        new Epoch(3), 4242, 1, At, At);

    private static readonly Webhooks.WebhookDelivery Delivery = new("d1", "wh1", 42, "VmReady", "failed", 3, 500, "HTTP 500", At);

    private static readonly Dictionary<string, string> Selector = new() { ["env"] = "dev" };

    private static readonly TenantRecord Tenant = new(new TenantId("acme"), new TenantQuota(10, 20, 4096), false, At);
    private static readonly ApiKeyRecord Key = new("0123456789abcdef", new TenantId("acme"), KeyRole.Member, "ab12", "ci", At, null);

    /// <summary>One instance of every type bound to the serializer; a new type without a sample fails the completeness test.</summary>
    public static readonly object[] Samples =
    [
        new HostRegistered(H, 8, 16384, "qemu", At, "akka.tcp://orchestrator@127.0.0.1:4053"),
        new VmRequested(Vm, new TenantId("acme"), Spec, At),
        // Every field of a spec set: the generated contract writes each as reflection does.
        new VmRequested(Vm, new TenantId("acme"), new VmSpec("web2", 4, 1024, "demo", RestartPolicy.Never, new VmResources(2048, 500, 1500, 128, 1024, "0-1"),
            new Dictionary<string, string> { ["tier"] = "web" }, "qemu", "kvm", new VmBootstrap("web2", ["ssh-ed25519 AAAA"], [1, 2, 3]), 20,
            ["zone=a", "!gpu"], "g1", [new Domain.Networks.VmNic("net1", "10.0.0.5", "52:54:00:00:00:01", ["sg1"])], ["data"], "web1/s1"),
            At, new IdempotencyToken("key-1", "hash")),
        new VmPlaced(Vm, H, new Epoch(1)),
        new VmPending(Vm, "no host has room"),
        new VmStarted(Vm, new Epoch(1), 99),
        new VmReady(Vm, new Epoch(1), At),
        new VmRestarting(Vm, new Epoch(1), 2, "killed"),
        new VmStopped(Vm, new Epoch(1), "stopped on request"),
        new VmFailed(Vm, new Epoch(1), "qemu missing"),
        new VmDesiredStateChanged(Vm, DesiredState.Stopped),
        new VmDeleteRequested(Vm),
        new VmReleased(Vm),
        new LedgerCommands.RegisterHost(H, 8, 16384, "qemu"),
        new LedgerCommands.CreateVm(new TenantId("acme"), Spec, Vm),
        new LedgerCommands.StopVm(new TenantId("acme"), "web1"),
        new LedgerCommands.StartVm(new TenantId("acme"), "web1"),
        new LedgerCommands.DeleteVm(new TenantId("acme"), "web1"),
        new LedgerCommands.ReportVm(Vm, new Epoch(2), VmStatus.Running, null, 7, null),
        new LedgerCommands.ConfirmDeleted(Vm),
        new SchedulerReplies.VmAccepted(Record),
        new SchedulerReplies.TenantAccepted(new SchedulerReplies.TenantFound(Tenant, new TenantUsage(1, 2, 512), [Key])),
        new SchedulerReplies.KeyIssued(Key),
        new SchedulerReplies.WebhookCreated(new WebhookRecord("wh1", new TenantId("acme"), "https://example.org/hook", "s3cret", ["VmReady"], At)),
        new SchedulerReplies.RuleCreated(new RuleRecord("rule1", new TenantId("acme"), "crashy", "VmRestarting", 3, TimeSpan.FromMinutes(10), null,
            Selector, RuleAction.Replace, At)),
        SchedulerReplies.Done.Instance,
        new SchedulerReplies.Refused(Refusal.Invalid([new FieldError("vcpus", "must be between 1 and 64")])),
        new SchedulerReplies.VmList([Record]),
        new SchedulerReplies.HostList([new HostRecord(H, 8, 16384, "qemu", HostState.Up, 2, 512, 1)]),
        new SchedulerReplies.VmFound(Record),
        new SchedulerReplies.HostAssignments([VmAssignment.From(Record)]),
        new SchedulerQueries.GetBootstrap(Vm),
        new SchedulerReplies.BootstrapOf(Vm, new VmBootstrap("web1.example.org", ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPiqCh9NnzBUj+DmyWnvEl25VXV4S1lDzwAFpRgytTny me@host"], [0, 1, 0xff])),
        new SchedulerQueries.ListVms(null),
        new SchedulerQueries.GetVm(new TenantId("acme"), "web1"),
        SchedulerQueries.ListHosts.Instance,
        new SchedulerQueries.ShowVm(new TenantId("acme"), "web1"),
        new SchedulerQueries.AwaitDeletion(new TenantId("acme"), "web1"),
        new SchedulerReplies.DeletionSettled(new TenantId("acme"), "web1"),
        new SchedulerReplies.VmShown(Record, new VmRuntime(Vm, 4242, [new VcpuUsage(0, 4243, 1.5)], [], 480, 1000, null)),
        new RegisterHostAgent(new LedgerCommands.RegisterHost(H, 8, 16384, "qemu")),
        new LedgerSnapshot([new HostRecord(H, 8, 16384, "qemu", HostState.Up, 2, 512, 1)], [Record]),
        new HostAgentCommands.Assign(VmAssignment.From(Record)),
        new HostAgentCommands.Assign(VmAssignment.From(Record, nics: [new Domain.Networks.NicAssignment(0, "net1", 7, "02:00:00:00:00:05", "10.0.0.5", 24,
            true, [new Domain.Networks.InboundRule("tcp", 80, 80, "0.0.0.0/0")], [new Domain.Networks.NicForward("tcp", 20000, 80)])])),
        new MayStartVm(Vm, new Epoch(3), H),
        new StartPermission(Vm, new Epoch(3), false, "re-placed on host-2 under epoch 4"),
        new LedgerCommands.LoseHost(H),
        new HostLost(H, At),
        new HostAgentCommands.GetVmRuntime(Vm),
        new VmRuntime(Vm, 4242, [new VcpuUsage(0, 4243, 1.5)], ["ORCHESTRATOR-GUEST-READY web1"], 480, 1000, "/sys/fs/cgroup/cpu/x", Paused: true),
        new VmRuntime(Vm, 4242, [], [], Guest: new Orchestrator.Hypervisor.GuestInfo("Debian GNU/Linux 12 (bookworm)", "web1", ["10.0.2.15/24"])),
        new HostAgentCommands.SetPaused(Vm, true),
        new Consoles.ConsoleCommands.Attach(new TenantId("acme"), "web1", CanWrite: true, Force: false),
        new Consoles.ConsoleCommands.AttachVm(Vm, CanWrite: false, Force: true),
        new Consoles.ConsoleCommands.Input("ls\r"u8.ToArray()),
        new Consoles.ConsoleReplies.Attached(Vm, false, "this key is read-only: output only", [0x1b, (byte)'[', (byte)'m', 0xff]),
        new Consoles.ConsoleReplies.Refused(true, "no VM named 'web1'"),
        new Consoles.ConsoleReplies.Output([0, 1, 2, 0xfe]),
        new Consoles.ConsoleReplies.TakenOver("another session took over"),
        new Consoles.ConsoleReplies.InputDropped(512),
        new Images.ImageStoreProtocol.Locate("img-0123456789abcdef", "qcow2"),
        new Images.ImageStoreProtocol.Holding("img-0123456789abcdef", 1 << 20),
        new Images.ImageStoreProtocol.NotHeld("img-0123456789abcdef"),
        new Images.ImageStoreProtocol.Discard("img-0123456789abcdef", "qcow2"),
        new Images.ImageStoreProtocol.Read("img-0123456789abcdef", "raw", 1 << 20),
        new Images.ImageStoreProtocol.Chunk("img-0123456789abcdef", 1 << 20, [0x51, 0x46, 0x49, 0xfb, 0]),
        new SetVmPaused(new TenantId("acme"), "web1", false),
        new VmPauseResult(Vm, false, "the VM is Stopped, not running"),
        new VmResourcesChanged(Vm, new VmResources(2048, 500, 1500, 128, 1024, "0-1")),
        new SharesChanged(Vm, H, 750),
        new HostUsageReport(H, [new VmCpuDemand(Vm, 1000)]),
        new LedgerCommands.RecomputeShares(H, [new VmCpuDemand(Vm, 1000)], 25),
        new LedgerCommands.SetVmResources(new TenantId("acme"), "web1", new VmResources(CpuLimitMillicores: 250)),
        new LedgerCommands.PatchVmResources(new TenantId("acme"), "web1",
            new VmResourcesPatch([VmResourcesPatch.CpuShares, VmResourcesPatch.Cpuset], new VmResources(CpuShares: 4096))),
        new LedgerCommands.SetVmLabels(new TenantId("acme"), "web1", new Dictionary<string, string> { ["env"] = "dev" }),
        new VmLabelsChanged(Vm, new Dictionary<string, string> { ["env"] = "dev" }),
        new PlacementCommands.SetHostLabels(new HostId("h1"), new Dictionary<string, string> { ["zone"] = "a" }, ["ssd"]),
        new PlacementCommands.CreateGroup(new TenantId("acme"), "web", Domain.Placement.GroupPolicy.SoftAntiAffinity),
        new PlacementCommands.DeleteGroup(new TenantId("acme"), "web"),
        new PlacementCommands.PlacePending(),
        new PlacementEvents.HostLabelsChanged(new HostId("h1"), new Dictionary<string, string> { ["zone"] = "a" }),
        new PlacementEvents.GroupCreated(new TenantId("acme"), "web", Domain.Placement.GroupPolicy.Affinity, DateTimeOffset.UnixEpoch),
        new PlacementEvents.GroupDeleted(new TenantId("acme"), "web"),
        new PlacementQueries.ListGroups(new TenantId("acme")),
        new PlacementReplies.GroupList([new PlacementReplies.GroupView(
            new Domain.Placement.GroupRecord(new TenantId("acme"), "web", Domain.Placement.GroupPolicy.AntiAffinity, DateTimeOffset.UnixEpoch), ["web1"])]),
        new TenantCreated(new TenantId("acme"), new TenantQuota(10, 20, 4096), At),
        new TenantUpdated(new TenantId("acme"), new TenantQuota(MaxVcpus: 8), true),
        new ApiKeyIssued("0123456789abcdef", new TenantId("acme"), KeyRole.ReadOnly, "ab12", "ci", At),
        new ApiKeyRevoked("0123456789abcdef", At),
        new LedgerCommands.CreateTenant(new TenantId("acme"), new TenantQuota(MaxVms: 3)),
        new LedgerCommands.UpdateTenant(new TenantId("acme"), null, false),
        new LedgerCommands.IssueKey("0123456789abcdef", new TenantId("acme"), KeyRole.Member, "ab12", null),
        new LedgerCommands.RevokeKey(new TenantId("acme"), "0123456789abcdef"),
        new SchedulerQueries.FindKey("0123456789abcdef"),
        new SchedulerQueries.GetTenant(new TenantId("acme")),
        SchedulerQueries.ListTenants.Instance,
        new SchedulerReplies.KeyFound(Key, Tenant),
        new SchedulerReplies.TenantFound(Tenant, new TenantUsage(1, 2, 512), [Key]),
        new SchedulerReplies.TenantList([new SchedulerReplies.TenantFound(Tenant, TenantUsage.None, [])]),
        new WebhookCreated("wh1", new TenantId("acme"), "https://example.org/hook", "s3cret", ["VmReady"], At),
        new WebhookDeleted("wh1", new TenantId("acme")),
        new LedgerCommands.CreateWebhook("wh1", new TenantId("acme"), "https://example.org/hook", "s3cret", []),
        new LedgerCommands.DeleteWebhook(new TenantId("acme"), "wh1"),
        new SchedulerQueries.ListWebhooks(new TenantId("acme")),
        new SchedulerReplies.WebhookList([new WebhookRecord("wh1", new TenantId("acme"), "https://example.org/hook", "s3cret", [], At)]),
        new Webhooks.WebhookProtocol.GetDeliveries(new TenantId("acme"), "wh1"),
        new Webhooks.WebhookProtocol.Deliveries([Delivery]),
        Delivery,
        new Webhooks.WebhookProtocol.Saved(41, At, [Delivery]),
        new Rules.RuleProtocol.Saved(41, At, [new RuleWindow("r1", VmId.New(), [At, At.AddSeconds(1)])]),
        new RuleCreated("rule1", new TenantId("acme"), "crashy", "VmRestarting", 3, TimeSpan.FromMinutes(10), null, Selector, RuleAction.Replace, At),
        new RuleDeleted("rule1", new TenantId("acme")),
        new RuleFired(Vm, "rule1", "crashy", RuleAction.Replace, "VmRestarting 3 time(s) within 00:10:00"),
        new LedgerCommands.CreateRule("rule1", new TenantId("acme"), "evening", null, 1, TimeSpan.Zero, "0 20 * * 1-5", Selector, RuleAction.Stop),
        new LedgerCommands.DeleteRule(new TenantId("acme"), "rule1"),
        new NetworkCommands.CreateNetwork("net1", new TenantId("acme"), "net", "10.0.0.0/24", Gateway: false),
        new NetworkCommands.DeleteNetwork(new TenantId("acme"), "net"),
        new NetworkEvents.NetworkCreated("net1", new TenantId("acme"), "net", "10.0.0.0/24", true, 7, At),
        new NetworkEvents.NetworkDeleted("net1", new TenantId("acme")),
        new NetworkQueries.ListNetworks(new TenantId("acme")),
        new NetworkReplies.NetworkCreated(new Domain.Networks.NetworkRecord("net1", new TenantId("acme"), "net", "10.0.0.0/24", true, 7, At)),
        new NetworkReplies.NetworkList([new NetworkReplies.NetworkView(
            new Domain.Networks.NetworkRecord("net1", new TenantId("acme"), "net", "10.0.0.0/24", true, 7, At), 3)]),
        new VolumeCommands.CreateVolume(VolumeId, new TenantId("acme"), "data", 5, "local"),
        new VolumeCommands.DeleteVolume(new TenantId("acme"), "data"),
        new VolumeCommands.ResizeVolume(new TenantId("acme"), "data", 9),
        new VolumeCommands.AttachVolume(new TenantId("acme"), "web", "data"),
        new VolumeCommands.DetachVolume(new TenantId("acme"), "web", "data"),
        new VolumeEvents.VolumeCreated(VolumeId, new TenantId("acme"), "data", 5, "local", new HostId("h1"), At),
        new VolumeEvents.VolumeDeleted(VolumeId, new TenantId("acme")),
        new VolumeEvents.VolumeResized(VolumeId, 9),
        new VolumeEvents.VolumeAttached(VolumeId, Vm),
        new VolumeEvents.VolumeDetached(VolumeId, Vm),
        new VolumeQueries.ListVolumes(new TenantId("acme")),
        new VolumeReplies.VolumeAccepted(new VolumeReplies.VolumeView(Volume, "web")),
        new VolumeReplies.VolumeList([new VolumeReplies.VolumeView(Volume with { AttachedTo = null, Host = null }, null)]),
        new Hosts.HostAgentCommands.DeleteVolume(VolumeId, "local"),
        new Hosts.HostAgentCommands.DeleteDiskLayer(VolumeId, "local"),
        new SnapshotCommands.TakeSnapshot(new TenantId("acme"), "web", "s1", VolumeId, VolumeId),
        new SnapshotCommands.DeleteSnapshot(new TenantId("acme"), "web", "s1"),
        new SnapshotCommands.RestoreSnapshot(new TenantId("acme"), "web", "s1", VolumeId),
        new SnapshotCommands.ConfirmDiskLayer(Vm, VolumeId),
        new SnapshotEvents.SnapshotTaken(VolumeId, new TenantId("acme"), "s1", Vm, VolumeId, null, VolumeId, "local", new HostId("h1"), 1, "demo",
            false, At),
        new SnapshotEvents.SnapshotsReady(Vm, [VolumeId]),
        new SnapshotEvents.SnapshotDeleted(VolumeId, new TenantId("acme")),
        new SnapshotEvents.VmDiskRestored(Vm, VolumeId, VolumeId),
        new SnapshotQueries.ListSnapshots(new TenantId("acme"), "web"),
        new ImageCommands.RegisterImage("img-0123456789abcdef", new TenantId("acme"), "mine", false, "qcow2", new string('a', 64), 4096, 1 << 20, "demo"),
        new ImageCommands.DeleteImage(new TenantId("acme"), "mine"),
        new ImageEvents.ImageRegistered("img-0123456789abcdef", new TenantId("acme"), "mine", false, "raw", new string('a', 64), 4096, 1 << 20, "demo", At),
        new ImageEvents.ImageDeleted("img-0123456789abcdef", new TenantId("acme")),
        new ImageQueries.ListImages(new TenantId("acme")),
        new ImageReplies.ImageAccepted(new Domain.Storage.ImageRecord("img-0123456789abcdef", TenantId.System, "base", true, "qcow2", new string('b', 64),
            1, 2, "debian", At)),
        new ImageReplies.ImageList([]),
        new SnapshotReplies.SnapshotAccepted(new SnapshotReplies.SnapshotView(Snapshot, "web")),
        new SnapshotReplies.SnapshotList([new SnapshotReplies.SnapshotView(Snapshot with { Backing = VolumeId, Host = null }, "web")], false),
        new Hosts.HostAgentCommands.SetNetworkPeers([new Domain.Networks.VxlanPeers(7, ["10.219.73.2", "10.219.73.3"])]),
        new RegisterHostAgent(new LedgerCommands.RegisterHost(H, 8, 16384, "qemu"), "10.219.73.1"),
        new SecurityGroupCommands.CreateSecurityGroup("sg1", new TenantId("acme"), "web"),
        new SecurityGroupCommands.DeleteSecurityGroup(new TenantId("acme"), "web"),
        new SecurityGroupCommands.AddSecurityRule(new TenantId("acme"), "web", SecurityRuleSample),
        new SecurityGroupCommands.RemoveSecurityRule(new TenantId("acme"), "web", "r1"),
        new SecurityGroupCommands.SetNicSecurityGroups(new TenantId("acme"), "web-1", 0, ["web", "db"]),
        new SecurityGroupEvents.SecurityGroupCreated("sg1", new TenantId("acme"), "web", At),
        new SecurityGroupEvents.SecurityGroupDeleted("sg1", new TenantId("acme")),
        new SecurityGroupEvents.SecurityRuleAdded("sg1", new TenantId("acme"), SecurityRuleSample with { RemoteCidr = null, RemoteGroup = "db" }),
        new SecurityGroupEvents.SecurityRuleRemoved("sg1", new TenantId("acme"), "r1"),
        new SecurityGroupEvents.NicSecurityGroupsChanged(Vm, new TenantId("acme"), 1, []),
        new SecurityGroupQueries.ListSecurityGroups(new TenantId("acme")),
        new SecurityGroupReplies.SecurityGroupList([new Domain.Networks.SecurityGroupRecord("sg1", new TenantId("acme"), "web", [SecurityRuleSample], At)]),
        new ForwardCommands.AddForward("f1", new TenantId("acme"), "net", 20000, "web", 80, "tcp"),
        new ForwardCommands.RemoveForward(new TenantId("acme"), "net", "f1"),
        new ForwardEvents.ForwardAdded(new Domain.Networks.PortForwardRecord("f1", new TenantId("acme"), "net1", Vm, 1, "udp", 20000, 53, At)),
        new ForwardEvents.ForwardRemoved("f1", new TenantId("acme"), Vm),
        new ForwardQueries.ListForwards(new TenantId("acme"), "net"),
        new ForwardReplies.ForwardList(true, [new ForwardReplies.ForwardView(
            new Domain.Networks.PortForwardRecord("f1", new TenantId("acme"), "net1", Vm, 0, "tcp", 20000, 80, At), "web", "10.0.0.5")]),
        new LedgerCommands.FireRule("rule1", Vm, "schedule"),
        new SchedulerQueries.ListRules(new TenantId("acme")),
        new SchedulerReplies.RuleList([new RuleRecord("rule1", new TenantId("acme"), "evening", null, 1, TimeSpan.Zero, "0 20 * * 1-5", Selector,
            RuleAction.Stop, At)]),
    ];

    public static TheoryData<int> SampleIndexes()
    {
        var data = new TheoryData<int>();
        for (var i = 0; i < Samples.Length; i++)
        {
            data.Add(i);
        }

        return data;
    }

    [Fact]
    public void Every_serializable_type_has_a_sample()
    {
        var sampled = Samples.Select(s => s.GetType()).ToHashSet();
        var missing = OrchestratorSerializer.TypesByManifest.Values.Where(t => !sampled.Contains(t)).Select(t => t.FullName).ToList();
        Assert.Empty(missing);
    }

    [Theory]
    [MemberData(nameof(SampleIndexes))]
    public void Every_message_survives_a_round_trip_through_the_configured_serializer(int index)
    {
        var sample = Samples[index];
        var serializer = Sys.Serialization.FindSerializerFor(sample);
        Assert.IsType<OrchestratorSerializer>(serializer);
        var manifest = Akka.Serialization.Serialization.ManifestFor(serializer, sample);
        var back = Sys.Serialization.Deserialize(serializer.ToBinary(sample), serializer.Identifier, manifest);
        Assert.Equal(Json(sample), Json(back));
        Assert.Equal(sample.GetType(), back.GetType());
    }

    [Fact]
    public void Every_ledger_event_type_has_a_source_generated_contract()
    {
        var missing = OrchestratorSerializer.TypesByManifest.Values
            .Where(t => typeof(ILedgerEvent).IsAssignableFrom(t) && OrchestratorSerializer.GeneratedContract(t) is null)
            .Select(t => t.FullName).ToList();
        Assert.True(missing.Count == 0, $"add [JsonSerializable] for these to LedgerEventJson: {string.Join(", ", missing)}");
    }

    /// <summary>
    /// Journal rows written by the generated contracts are byte for byte those the reflection serializer wrote, less the
    /// properties that reading never sets (computed from the rest). Nothing read is lost: a row reads back as the event,
    /// and so does a row an earlier version wrote with them; both are read by the generated contracts as the reflection
    /// serializer reads them.
    /// </summary>
    [Theory]
    [MemberData(nameof(SampleIndexes))]
    public void A_ledger_event_is_written_and_read_as_by_reflection(int index)
    {
        var sample = Samples[index];
        if (sample is not ILedgerEvent)
        {
            return;
        }

        var serializer = (OrchestratorSerializer)Sys.Serialization.FindSerializerFor(sample);
        var type = sample.GetType();
        var earlier = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(sample, type, OrchestratorSerializer.Json);
        var written = serializer.ToBinary(sample);
        Assert.NotNull(OrchestratorSerializer.GeneratedContract(type));
        Assert.Equal(System.Text.Encoding.UTF8.GetString(System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(sample, type, ReflectionWithoutComputed)),
            System.Text.Encoding.UTF8.GetString(written));

        foreach (var row in new[] { written, earlier })
        {
            var read = serializer.FromBinary(row, serializer.Manifest(sample));
            Assert.Equal(type, read.GetType());
            Assert.Equal(Json(System.Text.Json.JsonSerializer.Deserialize(row, type, OrchestratorSerializer.Json)!), Json(read));
            Assert.Equal(Json(sample), Json(read));
        }
    }

    [Fact]
    public void A_vm_requested_row_leaves_out_what_is_computed_from_its_spec_and_its_unset_fields()
    {
        var requested = new VmRequested(Record.Id, Record.Tenant, Spec, DateTimeOffset.UnixEpoch);
        var row = System.Text.Encoding.UTF8.GetString(Sys.Serialization.FindSerializerFor(requested).ToBinary(requested));

        foreach (var computed in new[] { "Compact", "EffectiveResources", "EffectiveLabels", "EffectiveDiskGiB" })
        {
            Assert.DoesNotContain($"\"{computed}\"", row);
        }

        Assert.DoesNotContain("null", row); // the spec's unset fields, and no idempotency token
        Assert.Contains($"\"{Spec.Name}\"", row);
    }

    [Fact]
    public void A_hosts_assignments_leave_bootstraps_in_the_ledger_so_a_hundred_of_the_largest_fit_akkas_default_frame()
    {
        var bootstrap = new VmBootstrap(new string('h', 63), [.. Enumerable.Repeat("ssh-ed25519 " + new string('A', 4000), VmBootstraps.MaxSshKeys)],
            new byte[VmBootstraps.MaxUserDataBytes]);
        var vm = Record with { Spec = Spec with { Bootstrap = bootstrap } };
        var assignments = new SchedulerReplies.HostAssignments([.. Enumerable.Repeat(VmAssignment.From(vm), 100)]);

        Assert.True(assignments.Assignments[0].HasBootstrap);
        var bytes = Sys.Serialization.FindSerializerFor(assignments).ToBinary(assignments).Length;
        Assert.True(bytes < 128_000, $"{bytes} bytes");
    }

    [Fact]
    public void An_unknown_manifest_is_a_clear_error()
    {
        var serializer = (SerializerWithStringManifest)Sys.Serialization.FindSerializerForType(typeof(VmPlaced));
        var error = Assert.Throws<SerializationException>(() => serializer.FromBinary("{}"u8.ToArray(), "LedgerEvents.VmTeleported"));
        Assert.Contains("LedgerEvents.VmTeleported", error.Message);
    }

    [Fact]
    public void Only_what_reading_restores_by_itself_is_left_out()
    {
        // Name has no setter but its constructor's parameter reads it; Length nothing reads. A missing Note reads as null,
        // so its null is left out; a missing Kind reads as "vm" and a missing Tag as "t", so their nulls are written.
        var written = System.Text.Json.JsonSerializer.Serialize(new GetOnly("web", note: null, kind: null) { Tag = null }, ReflectionWithoutComputed);
        Assert.Equal("""{"Name":"web","Kind":null,"Tag":null}""", written);
        var read = System.Text.Json.JsonSerializer.Deserialize<GetOnly>(written, ReflectionWithoutComputed)!;
        Assert.Equal(("web", null, null, null), (read.Name, read.Note, read.Kind, read.Tag));
        Assert.Equal("""{"Name":"web","Note":"n","Kind":"vm","Tag":"t"}""",
            System.Text.Json.JsonSerializer.Serialize(new GetOnly("web", note: "n"), ReflectionWithoutComputed));
    }

    public sealed class GetOnly(string name, string? note = null, string? kind = "vm")
    {
        public string Name { get; } = name;

        public string? Note { get; } = note;

        public string? Kind { get; } = kind;

        public string? Tag { get; init; } = "t";

        public int Length => Name.Length;
    }

    /// <summary>The reflection serializer with the journal's rule for what reading restores by itself.</summary>
    private static readonly System.Text.Json.JsonSerializerOptions ReflectionWithoutComputed = new(OrchestratorSerializer.Json)
    {
        TypeInfoResolver = new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver { Modifiers = { OrchestratorSerializer.WithoutComputed } },
    };

    // Records holding lists compare by reference; their JSON compares by value.
    private static string Json(object o) => System.Text.Json.JsonSerializer.Serialize(o, o.GetType(), OrchestratorSerializer.Json);
}
