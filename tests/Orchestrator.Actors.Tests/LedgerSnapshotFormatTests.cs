using System.Buffers.Binary;
using System.Collections;
using System.IO.Hashing;
using System.Reflection;
using Akka.Serialization;
using Akka.TestKit.Xunit2;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Serialization;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Storage;
using Orchestrator.Domain.Networks;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Actors.Tests;

/// <summary>The scheduler's snapshot in its binary form, and the JSON snapshots stored before it.</summary>
public class LedgerSnapshotFormatTests() : TestKit(TestConfig.Serialization())
{
    private static readonly DateTimeOffset At = new(2026, 11, 24, 1, 2, 3, TimeSpan.FromMinutes(330));
    private static readonly TenantId Acme = new("acme");

    /// <summary>Every property of every record set, none to its default (a test checks that); strings shared between records.</summary>
    public static LedgerSnapshot Full()
    {
        var before = BeforePlacement();
        var placed = before with
        {
            Hosts = before.Hosts.Select((h, i) => h with { Labels = new Dictionary<string, string> { ["zone"] = $"z{i}", ["ssd"] = "" } }).ToList(),
            Vms = before.Vms.Select((v, i) => v with
            {
                Spec = v.Spec with { HostSelector = ["zone=a", "ssd", "!gpu", $"rack!=r{i}"], Group = i == 1 ? "db" : "web" },
            }).ToList(),
            Groups =
            [
                new Domain.Placement.GroupRecord(Acme, "web", Domain.Placement.GroupPolicy.SoftAntiAffinity, At),
                new Domain.Placement.GroupRecord(new TenantId("beta"), "db", Domain.Placement.GroupPolicy.Affinity, At.AddDays(-1)),
            ],
        };
        var networked = placed with
        {
            Vms = placed.Vms.Select((v, i) => v with { Spec = v.Spec with { Nics = Nics[i] } }).ToList(),
            Networks =
            [
                new NetworkRecord("net-1", Acme, "net", "10.0.0.0/24", true, 16_777_215, At),
                new NetworkRecord("net-2", Acme, "back", "192.168.0.0/16", true, 1, At),
            ],
            IdempotencyKeys =
            [
                new IdempotencyRecord(new IdempotencyToken("9f86d081884c7d65", "ünïcode ✓"), placed.Vms[0].Id, At),
                new IdempotencyRecord(new IdempotencyToken("k2", "b"), new VmId(Guid.AllBitsSet), DateTimeOffset.MaxValue),
            ],
        };
        return WithNetLimits(WithImages(WithDiskLimits(WithForwards(WithCountQuotas(WithSecurityGroups(WithSnapshots(WithVolumes(networked))))))));
    }

    /// <summary>What layout version 13 added: imported images (every field set: the test of defaults reads each).</summary>
    private static LedgerSnapshot WithImages(LedgerSnapshot snapshot) => snapshot with
    {
        Images =
        [
            new ImageRecord("img-0123456789abcdef", Acme, "my-disk", true, "qcow2", new string('e', 64), 1_048_576, 17_179_869_184, "debian", At),
            new ImageRecord("img-fedcba9876543210", TenantId.System, "base-ünïcode", true, "raw", new string('0', 64), 1, long.MaxValue, "demo",
                DateTimeOffset.MaxValue),
        ],
    };

    private static LedgerSnapshot WithoutImages(LedgerSnapshot snapshot) => snapshot with { Images = null };

    /// <summary>What layout version 12 added: tenants' volume, network and address quotas (one tenant with some unset).</summary>
    private static LedgerSnapshot WithCountQuotas(LedgerSnapshot snapshot) => snapshot with
    {
        Tenants = snapshot.Tenants!.Select((t, i) => t with
        {
            Quota = t.Quota with { MaxVolumes = i == 0 ? 7 : int.MaxValue, MaxNetworks = i == 0 ? 3 : null, MaxAddresses = 254 },
        }).ToList(),
    };

    /// <summary>A snapshot as builds before count quotas (layout version 11) read it back.</summary>
    private static LedgerSnapshot WithoutCountQuotas(LedgerSnapshot snapshot) => snapshot with
    {
        Tenants = snapshot.Tenants?.Select(t => t with { Quota = t.Quota with { MaxVolumes = null, MaxNetworks = null, MaxAddresses = null } }).ToList(),
    };

    /// <summary>What layout version 12 added: the VMs' disk I/O limits and share weights.</summary>
    private static LedgerSnapshot WithDiskLimits(LedgerSnapshot snapshot) => snapshot with
    {
        Vms = snapshot.Vms.Select((v, i) => v with
        {
            Spec = v.Spec with
            {
                Resources = (v.Spec.Resources ?? VmResources.Default) with
                {
                    DiskIops = 500 + i, DiskBps = i == 0 ? long.MaxValue : 4L * 1024 * 1024, DiskShares = i == 1 ? int.MaxValue : 200,
                },
            },
        }).ToList(),
    };

    /// <summary>A snapshot as builds before disk limits (layout version 11) read it back.</summary>
    private static LedgerSnapshot WithoutDiskLimits(LedgerSnapshot snapshot) => snapshot with
    {
        Vms = snapshot.Vms.Select(v => v with
        {
            Spec = v.Spec with { Resources = v.Spec.Resources is { } r ? r with { DiskIops = null, DiskBps = null, DiskShares = null } : null },
        }).ToList(),
    };

    /// <summary>What layout version 13 added: the VMs' network limits and share weights.</summary>
    private static LedgerSnapshot WithNetLimits(LedgerSnapshot snapshot) => snapshot with
    {
        Vms = snapshot.Vms.Select((v, i) => v with
        {
            Spec = v.Spec with
            {
                Resources = (v.Spec.Resources ?? VmResources.Default) with { NetBps = i == 0 ? long.MaxValue : 1024 * 1024, NetShares = i == 1 ? int.MaxValue : 200 },
            },
        }).ToList(),
    };

    /// <summary>A snapshot as builds before network limits (layout version 12) read it back.</summary>
    private static LedgerSnapshot WithoutNetLimits(LedgerSnapshot snapshot) => snapshot with
    {
        Vms = snapshot.Vms.Select(v => v with
        {
            Spec = v.Spec with { Resources = v.Spec.Resources is { } r ? r with { NetBps = null, NetShares = null } : null },
        }).ToList(),
    };

    /// <summary>What layout version 10 added: disk snapshots, the VMs' disk layers, clones' sources and tenants' snapshot quotas.</summary>
    private static LedgerSnapshot WithSnapshots(LedgerSnapshot snapshot) => snapshot with
    {
        Tenants = snapshot.Tenants!.Select(t => t with { Quota = t.Quota with { MaxSnapshots = 7 } }).ToList(),
        Vms = snapshot.Vms.Select((v, i) => v with
        {
            Spec = v.Spec with { FromSnapshot = $"web-{i}/ünïcode ✓" },
            Disk = v.Disk! with { Layer = $"{i}1111111111111111111111111111111", Backing = $"{i}2222222222222222222222222222222" },
        }).ToList(),
        Snapshots =
        [
            new SnapshotRecord("33333333333333333333333333333333", Acme, "s1", new VmId(Guid.Parse("6f1c2a8e-0d4b-4c55-9a43-1f6f4b8d2e01")),
                "02222222222222222222222222222222", "44444444444444444444444444444444", "local", new HostId("host-7"), 20, "ubuntu-24.04", true, At),
            new SnapshotRecord("55555555555555555555555555555555", new TenantId("beta"), "ünïcode ✓", new VmId(Guid.AllBitsSet), "66", "77",
                "nfs-ünïcode", new HostId("h"), int.MaxValue, "other", true, At.AddDays(-3)),
        ],
    };

    /// <summary>A snapshot as builds before disk snapshots (layout version 9) read it back.</summary>
    private static LedgerSnapshot WithoutSnapshots(LedgerSnapshot snapshot) => snapshot with
    {
        Tenants = snapshot.Tenants?.Select(t => t with { Quota = t.Quota with { MaxSnapshots = null } }).ToList(),
        Vms = snapshot.Vms.Select(v => v with
        {
            Spec = v.Spec with { FromSnapshot = null }, Disk = v.Disk is null ? null : v.Disk with { Layer = null, Backing = null },
        }).ToList(),
        Snapshots = null,
    };

    /// <summary>What layout version 11 added: security groups and their rules, and the groups of the VMs' NICs.</summary>
    private static LedgerSnapshot WithSecurityGroups(LedgerSnapshot snapshot) => snapshot with
    {
        Vms = snapshot.Vms.Select((v, i) => v with
        {
            Spec = v.Spec with { Nics = v.Spec.Nics!.Select(n => n with { SecurityGroups = ["web", $"ünïcode ✓{i}"] }).ToList() },
        }).ToList(),
        SecurityGroups =
        [
            new SecurityGroupRecord("sg0123456789ab", Acme, "web",
            [
                new SecurityRule("r1", "tcp", 8080, 8090, "10.0.1.0/24", "ünïcode ✓0"),
                new SecurityRule("r2", "icmp", -1, int.MaxValue, "0.0.0.0/0", "web"),
            ], At),
            new SecurityGroupRecord("sg-ünïcode ✓", new TenantId("beta"), "ünïcode ✓1", [new SecurityRule("r-ünïcode ✓", "udp", 1, 65535, "0.0.0.0/0", "x")], At.AddDays(-2)),
        ],
    };

    /// <summary>What layout version 12 added: port forwards and the tenants' granted forward ports.</summary>
    private static LedgerSnapshot WithForwards(LedgerSnapshot snapshot) => snapshot with
    {
        Tenants = snapshot.Tenants!.Select((t, i) => i == 0 ? t with { Quota = t.Quota with { ForwardPorts = "20000-20099" } } : t).ToList(),
        Forwards =
        [
            new PortForwardRecord("f01234567", Acme, "net-1", new VmId(Guid.Parse("6f1c2a8e-0d4b-4c55-9a43-1f6f4b8d2e01")), 1, "tcp", 20000, 80, At),
            new PortForwardRecord("f-ünïcode ✓", new TenantId("beta"), "net-2", new VmId(Guid.AllBitsSet), int.MaxValue, "udp", 65535, 1, At.AddDays(-1)),
        ],
    };

    /// <summary>A snapshot as builds before port forwards (layout version 11) read it back.</summary>
    private static LedgerSnapshot WithoutForwards(LedgerSnapshot snapshot) => snapshot with
    {
        Tenants = snapshot.Tenants?.Select(t => t with { Quota = t.Quota with { ForwardPorts = null } }).ToList(),
        Forwards = null,
    };

    /// <summary>A snapshot as builds before layout version 12 read it back: no count quotas, forwards, disk or network limits, images.</summary>
    private static LedgerSnapshot WithoutVersion12(LedgerSnapshot snapshot) =>
        WithoutNetLimits(WithoutDiskLimits(WithoutForwards(WithoutCountQuotas(WithoutImages(snapshot)))));

    /// <summary>A snapshot as builds before security groups (layout version 10) read it back (nothing of version 12 either).</summary>
    private static LedgerSnapshot WithoutSecurityGroups(LedgerSnapshot full) => WithoutVersion12(full) is var snapshot ? snapshot with
    {
        Vms = snapshot.Vms.Select(v => v with { Spec = v.Spec with { Nics = v.Spec.Nics?.Select(n => n with { SecurityGroups = null }).ToList() } }).ToList(),
        SecurityGroups = null,
    } : snapshot;

    /// <summary>What layout version 9 added: volumes, tenants' storage quotas and the volume names a VM's spec may carry.</summary>
    private static LedgerSnapshot WithVolumes(LedgerSnapshot snapshot) => snapshot with
    {
        Tenants = snapshot.Tenants!.Select(t => t with { Quota = t.Quota with { MaxStorageGiB = 4096 } }).ToList(),
        Vms = snapshot.Vms.Select((v, i) => v with { Spec = v.Spec with { Volumes = i == 0 ? ["data", "ünïcode ✓"] : ["logs"] } }).ToList(),
        Volumes =
        [
            new VolumeRecord("0123456789abcdef0123456789abcdef", Acme, "data", 20, "local", new HostId("host-7"),
                new VmId(Guid.Parse("6f1c2a8e-0d4b-4c55-9a43-1f6f4b8d2e01")), At),
            new VolumeRecord("ffffffffffffffffffffffffffffffff", new TenantId("beta"), "ünïcode ✓", int.MaxValue, "nfs-ünïcode", new HostId("h"),
                new VmId(Guid.AllBitsSet), At.AddDays(-3)),
        ],
    };

    /// <summary>A snapshot as builds before volumes (layout version 8) read it back (no snapshots or security groups either).</summary>
    private static LedgerSnapshot WithoutVolumes(LedgerSnapshot full) => WithoutSnapshots(WithoutSecurityGroups(WithoutCountQuotas(full))) is var snapshot ? snapshot with
    {
        Tenants = snapshot.Tenants?.Select(t => t with { Quota = t.Quota with { MaxStorageGiB = null } }).ToList(),
        Vms = snapshot.Vms.Select(v => v with { Spec = v.Spec with { Volumes = null } }).ToList(),
        Volumes = null,
    } : full;

    /// <summary>The NICs of <see cref="Full"/>'s VMs, by position (layout version 7).</summary>
    private static readonly VmNic[][] Nics =
    [
        [new VmNic("net", "10.0.0.2", "02:00:00:00:00:01"), new VmNic("back", "192.168.7.9", "02:ff:00:00:00:02")],
        [new VmNic("net", "10.0.0.3", "02:00:00:00:00:03")],
        [new VmNic("ünïcode ✓", "255.255.255.255", "ff:ff:ff:ff:ff:ff")],
    ];

    /// <summary><see cref="Full"/> as the builds before the placement section (layout version 5) knew it.</summary>
    private static LedgerSnapshot BeforePlacement() => new(
        [
            new HostRecord(new HostId("host-7"), 48, 196_608, "qemu", HostState.Maintenance, 12, 24_576, 3,
                "akka.tcp://orchestrator@10.0.0.7:4053", 1500, 2048, new HostAccelerator("kvm", "host,arch-capabilities=off,pmu=off", "after: kvm -cpu host: exited"),
                [new StoragePoolInfo("local", "dir", 512, 4.0, true), new StoragePoolInfo("nfs-ünïcode", "dir", long.MaxValue, 1.5, true)]),
            new HostRecord(new HostId("host-8"), int.MaxValue, long.MaxValue, "qemu", HostState.Down, -1, long.MinValue, int.MinValue,
                "akka.tcp://orchestrator@10.0.0.8:4053", long.MaxValue, -7,
                new HostAccelerator("tcg", "max", "fell back to TCG: kvm -cpu host: exited before the banner (exit code 134: ünïcode ✓)"),
                [new StoragePoolInfo("r", "rbd", long.MinValue, double.Epsilon, true)]),
        ],
        [
            new VmRecord(new VmId(Guid.Parse("6f1c2a8e-0d4b-4c55-9a43-1f6f4b8d2e01")), Acme,
                new VmSpec("web-1", 4, 8192, "ubuntu-24.04", RestartPolicy.Never, new VmResources(2048, 500, 3000, 1024, 9000, "0-3,8"),
                    new Dictionary<string, string> { ["env"] = "prod", ["tier"] = "web", ["note"] = "" }, "kvm", "kvm",
                    new VmBootstrap("web-1.example.org", ["ssh-ed25519 AAAA key-1", "ssh-rsa AAAA ünïcode ✓"], [1, 255, (byte)'#', (byte)'!']), DiskGiB: 20),
                DesiredState.Stopped, VmStatus.Restarting, "qemu exited with 137: ünïcode ✓ 🚀", new HostId("host-7"), new Epoch(42), 31337, 5,
                At, new DateTimeOffset(2026, 11, 24, 1, 2, 3, TimeSpan.FromHours(-8)), 1750, new VmDisk("local", new HostId("host-7"))),
            new VmRecord(new VmId(Guid.Parse("0b7d3c11-5e2f-4a8d-8c1b-2d9e7f6a5b02")), new TenantId("beta"),
                new VmSpec("web-1", 1, 512, "ubuntu-24.04", RestartPolicy.OnFailure, new VmResources(CpuShares: 2, Cpuset: "0-3,8",
                    CpuReservationMillicores: 1, CpuLimitMillicores: 10, MemoryReservationMiB: 1, MemoryLimitMiB: 512),
                    new Dictionary<string, string> { ["tier"] = "web" }, "qemu", "kvm", new VmBootstrap("web-1", ["ssh-ed25519 AAAA key-1"], [7]), DiskGiB: 1),
                DesiredState.Stopped, VmStatus.Deleting, "deleting", new HostId("host-7"), new Epoch(1), 1, 1, At.AddTicks(1), At.AddDays(1), 1, new VmDisk("nfs-ünïcode", new HostId("host-8"))),
            new VmRecord(new VmId(Guid.Parse("ffffffff-ffff-ffff-ffff-ffffffffffff")), TenantId.System,
                new VmSpec("edge", int.MaxValue, int.MinValue, "other", RestartPolicy.Never,
                    new VmResources(int.MinValue, int.MaxValue, int.MinValue, int.MinValue, int.MaxValue, "1"),
                    new Dictionary<string, string> { ["x"] = "y" }, "kvm", "kvm", new VmBootstrap("edge", ["k"], [.. Enumerable.Range(1, 255).Select(i => (byte)i)]), DiskGiB: int.MinValue),
                DesiredState.Stopped, VmStatus.Failed, "x", new HostId("host-8"), new Epoch(long.MaxValue), int.MinValue, -1,
                new DateTimeOffset(1, 1, 1, 14, 1, 0, TimeSpan.FromHours(14)), DateTimeOffset.MaxValue, long.MinValue, new VmDisk("r", new HostId("h"))),
        ],
        [new TenantRecord(Acme, new TenantQuota(10, 40, 65_536), true, At, new TenantCpuPool(4096, 2000, 8000))],
        [new ApiKeyRecord("k-0123456789abcdef", Acme, KeyRole.ReadOnly, "9f86d081884c7d659a2feaa0c55ad015", "ci", At, At.AddHours(3))],
        [new WebhookRecord("wh-1", Acme, "https://hooks.example.org/orchestrator?x=1", "s3cret", ["VmReady", "VmFailed"], At)],
        [
            new RuleRecord("rule-1", Acme, "nightly", "VmRestarting", 3, TimeSpan.FromMinutes(10), "0 20 * * 1-5",
                new Dictionary<string, string> { ["tier"] = "web" }, RuleAction.Replace, At),
        ]);

    /// <summary>Snapshots with the optional parts absent, empty or zero: each must come back as it was, null apart from empty.</summary>
    public static TheoryData<string> Sparse() => new(SparseSnapshots.Keys);

    private static readonly Dictionary<string, LedgerSnapshot> SparseSnapshots = new()
    {
        ["empty, lists beyond hosts and VMs null"] = new LedgerSnapshot([], []),
        ["every list empty"] = new LedgerSnapshot([], [], [], [], [], []),
        ["a host with no pools, a VM whose disk is on a shared pool"] = new LedgerSnapshot(
            [new HostRecord(new HostId("h"), 0, 0, "", HostState.Up, 0, 0, 0, Pools: [])],
            [
                new VmRecord(new VmId(Guid.Empty), TenantId.System, new VmSpec("a", 0, 0, "", DiskGiB: 0), DesiredState.Running,
                    VmStatus.Pending, null, null, Epoch.Zero, null, 0, default, null, Disk: new VmDisk("nfs", null)),
            ]),
        ["records with every optional part null"] = new LedgerSnapshot(
            [new HostRecord(new HostId("h"), 0, 0, "", HostState.Up, 0, 0, 0)],
            [
                new VmRecord(new VmId(Guid.Empty), TenantId.System, new VmSpec("a", 0, 0, ""), DesiredState.Running, VmStatus.Pending, null, null,
                    Epoch.Zero, null, 0, default, null),
                new VmRecord(new VmId(Guid.NewGuid()), TenantId.System, new VmSpec("b", 1, 1, "", Resources: new VmResources(),
                        Labels: new Dictionary<string, string>()), DesiredState.Running, VmStatus.Pending, null, null, Epoch.Zero, null, 0, default,
                    null, 0),
                new VmRecord(new VmId(Guid.NewGuid()), TenantId.System, new VmSpec("c", 1, 1, "", Bootstrap: new VmBootstrap()), DesiredState.Running,
                    VmStatus.Pending, null, null, Epoch.Zero, null, 0, default, null),
                new VmRecord(new VmId(Guid.NewGuid()), TenantId.System, new VmSpec("d", 1, 1, "", Bootstrap: new VmBootstrap("", [""], [])),
                    DesiredState.Running, VmStatus.Pending, null, null, Epoch.Zero, null, 0, default, null),
                new VmRecord(new VmId(Guid.NewGuid()), new TenantId(""), new VmSpec("", 1, 1, "", Resources: new VmResources(Cpuset: ""),
                        Labels: new Dictionary<string, string> { ["k"] = "" }), DesiredState.Running, VmStatus.Pending, "", new HostId(""),
                    Epoch.Zero, 0, 0, default, default, 0),
            ],
            [new TenantRecord(Acme, TenantQuota.Unlimited, false, default), new TenantRecord(new TenantId("b"), TenantQuota.Unlimited, false, default, new TenantCpuPool())],
            [new ApiKeyRecord("k", Acme, KeyRole.Admin, "", null, default, null)],
            [new WebhookRecord("w", Acme, "", "", [], default)],
            [new RuleRecord("r", Acme, "", null, 0, TimeSpan.Zero, null, new Dictionary<string, string>(), RuleAction.Stop, default)],
            Networks: [new NetworkRecord("", Acme, "", "", false, 0, default)],
            Volumes: [new VolumeRecord("", Acme, "", 0, "", null, null, default)]),
        ["a VM naming no volumes, a tenant with a zero storage quota"] = new LedgerSnapshot([],
            [
                new VmRecord(new VmId(Guid.Empty), TenantId.System, new VmSpec("a", 0, 0, "", Volumes: []), DesiredState.Running,
                    VmStatus.Pending, null, null, Epoch.Zero, null, 0, default, null),
            ],
            [new TenantRecord(Acme, new TenantQuota(MaxStorageGiB: 0), false, default)], Volumes: []),
        ["disk snapshots, a VM on a layer of its chain, a clone, a tenant with a snapshot quota"] = new LedgerSnapshot([],
            [
                new VmRecord(new VmId(Guid.Empty), Acme, new VmSpec("a", 1, 1, "demo"), DesiredState.Stopped, VmStatus.Stopped, null, null,
                    Epoch.Zero, null, 0, default, null, Disk: new VmDisk("local", new HostId("h1"), "11111111111111111111111111111111",
                        "00000000000000000000000000000000")),
                new VmRecord(new VmId(Guid.Parse("0b7d3c11-5e2f-4a8d-8c1b-2d9e7f6a5b02")), Acme, new VmSpec("b", 1, 1, "demo", FromSnapshot: "a/s1"),
                    DesiredState.Running, VmStatus.Pending, null, null, Epoch.Zero, null, 0, default, null,
                    Disk: new VmDisk("nfs", null, null, "00000000000000000000000000000000")),
            ],
            [new TenantRecord(Acme, new TenantQuota(MaxSnapshots: 3), false, default)],
            Snapshots:
            [
                new SnapshotRecord("22222222222222222222222222222222", Acme, "s1", new VmId(Guid.Empty), "00000000000000000000000000000000", null,
                    "local", new HostId("h1"), 2, "demo", true, At),
                new SnapshotRecord("", Acme, "", new VmId(Guid.Empty), "", "", "", null, 0, "", false, default),
            ]),
    };

    [Fact]
    public void New_snapshots_are_stored_under_the_binary_manifest()
    {
        var serializer = (SerializerWithStringManifest)Sys.Serialization.FindSerializerFor(Full());
        Assert.Equal(LedgerSnapshotFormat.Manifest, serializer.Manifest(Full()));
        Assert.Equal("LEDG"u8.ToArray(), serializer.ToBinary(Full())[..4]);
    }

    [Fact]
    public void Every_field_of_every_record_survives_the_binary_format()
    {
        var snapshot = Full();
        Assert.Equal(Json(snapshot), Json(RoundTrip(snapshot)));
    }

    [Theory]
    [MemberData(nameof(Sparse))]
    public void Nulls_and_empties_survive_the_binary_format(string name)
    {
        var snapshot = SparseSnapshots[name];
        Assert.Equal(Json(snapshot), Json(RoundTrip(snapshot)));
    }

    [Fact]
    public void The_full_sample_sets_every_property_so_a_dropped_one_would_show()
    {
        // A whole snapshot has no delta: the sample's incremental twin sets it.
        Assert.Empty(DefaultsIn(Full() with { Delta = new SnapshotDelta(7, [new HostId("h")], [VmId.New()]) }, typeof(LedgerSnapshot), "snapshot"));
    }

    [Fact]
    public void The_format_covers_every_property_of_every_record_in_a_snapshot()
    {
        foreach (var type in RecordTypesIn(typeof(LedgerSnapshot)))
        {
            Assert.True(LedgerSnapshotFormat.Covered.TryGetValue(type, out var covered), $"{type.Name} is in a snapshot but not in the format");
            Assert.Equal(DataProperties(type).Select(p => p.Name).Order(), covered.Order());
        }
    }

    [Fact]
    public void The_binary_form_is_much_smaller_than_the_json()
    {
        var snapshot = Full();
        var json = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(snapshot, OrchestratorSerializer.Json);
        Assert.True(LedgerSnapshotFormat.Write(snapshot).Length * 3 < json.Length);
    }

    [Fact]
    public void A_snapshot_stored_as_json_by_an_earlier_version_reads_back_to_the_same_state()
    {
        var serializer = (SerializerWithStringManifest)Sys.Serialization.FindSerializerFor(LegacySnapshot.Expected);
        var fromJson = (LedgerSnapshot)serializer.FromBinary(System.Text.Encoding.UTF8.GetBytes(LegacySnapshot.Json), LegacySnapshot.Manifest);

        Assert.Equal(Json(LegacySnapshot.Expected), Json(fromJson));
        var viaBinary = RoundTrip(fromJson);
        Assert.Equal(Json(LegacySnapshot.Expected), Json(viaBinary));
        var before = State(fromJson);
        var after = State(viaBinary);
        Assert.Equal(before.Usage.OrderBy(u => u.Key.Value), after.Usage.OrderBy(u => u.Key.Value));
        Assert.Equal(AllNames(before), AllNames(after));
        Assert.Equal(before.Hosts.Values, after.Hosts.Values);
        Assert.Equal(before.Tenants.Values, after.Tenants.Values);
        Assert.Equal(before.Keys.Values, after.Keys.Values);
    }

    /// <summary><see cref="Full"/> as the build before VM drivers wrote it (layout version 1), from that build.</summary>
    private const string Version1Full =
        "TEVERwHCAwAAAAAAAAMBB2hvc3QtNzAAAAAAAAMAAAAAAAEFcWVtdQMMAAAAAGAAAAAAAAADAAAAASZha2thLnRjcDovL29yY2hlc3RyYXRvckAxMC4wLjAuNzo0MDUz3AUAAAAAAAAACAAAAAAAAAEHaG9zdC04////f/////////9/AwL/////AAAAAAAAAIAAAACAASZha2thLnRjcDovL29yY2hlc3RyYXRvckAxMC4wLjAuODo0MDUz/////////3/5/////////wSOKhxvSw1VTJpDH29LjS4BAQVhY21lBndlYi0xBAAAAAAgAAABDXVidW50dS0yNC4wNAIBAQAIAAD0AQAAAbgLAAAABAAAASgjAAABBjAtMyw4BAEEZW52AQVwcm9kAQV0aWVyAQR3ZWIBBW5vdGUBAQEGASlxZW11IGV4aXRlZCB3aXRoIDEzNzogw7xuw69jb2RlIOKckyDwn5qAAQIqAAAAAAAAAAFpegAABQAAAID3II3GSd8ISgEBgPcgjcZJ3wgg/gHWBgAAAAAAABE8fQsvXo1KjBstnn9qWwIBBWJldGEGd2ViLTEBAAAAAAIAAAgBAQECAAAAAQAAAAEKAAAAAQAAAAEAAgAACQIMDQEIAQlkZWxldGluZwECAQAAAAAAAAABAQAAAAEAAACB9yCNxknfCEoBAYC3irePSt8ISgEBAQAAAAAAAAD/////////////////////AQdzeXN0ZW0FZWRnZf///38AAACAAQZvdGhlcgIBAQAAAID///9/AQAAAIAAAACAAf///38BAjECAQJ4AQJ5AQcWAQX/////////fwEAAACA/////wD2gHx1AAAASAMB/z839HUoyisAAAEAAAAAAAAAgAIHAQoAAAABKAAAAAEAAAEAAAAAAAGA9yCNxknfCEoBAQEAEAAA0AcAAAFAHwAAAhNrLTAxMjM0NTY3ODlhYmNkZWYHAiE5Zjg2ZDA4MTg4NGM3ZDY1OWEyZmVhYTBjNTVhZDAxNQNjaYD3II3GSd8ISgEBgC9ust9J3whKAQIFd2gtMQcraHR0cHM6Ly9ob29rcy5leGFtcGxlLm9yZy9vcmNoZXN0cmF0b3I/eD0xB3MzY3JldAMBCFZtUmVhZHkBCVZtRmFpbGVkgPcgjcZJ3whKAQIHcnVsZS0xBwhuaWdodGx5AQ1WbVJlc3RhcnRpbmcDAAAAALygZQEAAAABDTAgMjAgKiAqIDEtNQIMDQKA9yCNxknfCEoBy2dXXcbSgJc=";

    [Fact]
    public void A_version_1_snapshot_from_the_build_before_drivers_reads_back_with_no_driver_named() =>
        AssertOldSnapshotReadsAs(Version1Full, 1, WithoutStorage(BeforePlacement()) with
        {
            Hosts = WithoutStorage(BeforePlacement()).Hosts.Select(h => h with { Accelerator = null }).ToList(),
            Vms = WithoutStorage(BeforePlacement()).Vms.Select(vm => vm with { Spec = vm.Spec with { Driver = null, Accelerator = null, Bootstrap = null } }).ToList(),
        });

    /// <summary><see cref="Full"/> as the build before host accelerators wrote it (layout version 2), from that build.</summary>
    private const string Version2Full =
        "TEVERwLJAwAAAAAAAAMBB2hvc3QtNzAAAAAAAAMAAAAAAAEFcWVtdQMMAAAAAGAAAAAAAAADAAAAASZha2thLnRjcDovL29yY2hlc3RyYXRvckAxMC4wLjAuNzo0MDUz3AUAAAAAAAAACAAAAAAAAAEHaG9zdC04////f/////////9/AwL/////AAAAAAAAAIAAAACAASZha2thLnRjcDovL29yY2hlc3RyYXRvckAxMC4wLjAuODo0MDUz/////////3/5/////////wSOKhxvSw1VTJpDH29LjS4BAQVhY21lBndlYi0xBAAAAAAgAAABDXVidW50dS0yNC4wNAIBAQAIAAD0AQAAAbgLAAAABAAAASgjAAABBjAtMyw4BAEEZW52AQVwcm9kAQV0aWVyAQR3ZWIBBW5vdGUBAQEEa3ZtAQYBKXFlbXUgZXhpdGVkIHdpdGggMTM3OiDDvG7Dr2NvZGUg4pyTIPCfmoABAioAAAAAAAAAAWl6AAAFAAAAgPcgjcZJ3whKAQGA9yCNxknfCCD+AdYGAAAAAAAAETx9Cy9ejUqMGy2ef2pbAgEFYmV0YQZ3ZWItMQEAAAAAAgAACAEBAQIAAAABAAAAAQoAAAABAAAAAQACAAAJAgwNAwEIAQlkZWxldGluZwECAQAAAAAAAAABAQAAAAEAAACB9yCNxknfCEoBAYC3irePSt8ISgEBAQAAAAAAAAD/////////////////////AQdzeXN0ZW0FZWRnZf///38AAACAAQZvdGhlcgIBAQAAAID///9/AQAAAIAAAACAAf///38BAjECAQJ4AQJ5EAEHFwEF/////////38BAAAAgP////8A9oB8dQAAAEgDAf8/N/R1KMorAAABAAAAAAAAAIACBwEKAAAAASgAAAABAAABAAAAAAABgPcgjcZJ3whKAQEBABAAANAHAAABQB8AAAITay0wMTIzNDU2Nzg5YWJjZGVmBwIhOWY4NmQwODE4ODRjN2Q2NTlhMmZlYWEwYzU1YWQwMTUDY2mA9yCNxknfCEoBAYAvbrLfSd8ISgECBXdoLTEHK2h0dHBzOi8vaG9va3MuZXhhbXBsZS5vcmcvb3JjaGVzdHJhdG9yP3g9MQdzM2NyZXQDAQhWbVJlYWR5AQlWbUZhaWxlZID3II3GSd8ISgECB3J1bGUtMQcIbmlnaHRseQENVm1SZXN0YXJ0aW5nAwAAAAC8oGUBAAAAAQ0wIDIwICogKiAxLTUCDA0CgPcgjcZJ3whKAb8lFbvq5CHv";

    [Fact]
    public void A_version_2_snapshot_from_the_build_before_accelerators_reads_back_with_none_known_or_asked_for() =>
        AssertOldSnapshotReadsAs(Version2Full, 2, WithoutStorage(BeforePlacement()) with
        {
            Hosts = WithoutStorage(BeforePlacement()).Hosts.Select(h => h with { Accelerator = null }).ToList(),
            Vms = WithoutStorage(BeforePlacement()).Vms.Select(vm => vm with { Spec = vm.Spec with { Accelerator = null, Bootstrap = null } }).ToList(),
        });

    /// <summary><see cref="Full"/> as the build before VM bootstraps wrote it (layout version 3), from that build.</summary>
    private const string Version3Full =
        "TEVERwNzBAAAAAAAAAMBB2hvc3QtNzAAAAAAAAMAAAAAAAEFcWVtdQMMAAAAAGAAAAAAAAADAAAAASZha2thLnRjcDovL29yY2hlc3RyYXRvckAxMC4wLjAuNzo0MDUz3AUAAAAAAAAACAAAAAAAAAEBBGt2bQEjaG9zdCxhcmNoLWNhcGFiaWxpdGllcz1vZmYscG11PW9mZh1hZnRlcjoga3ZtIC1jcHUgaG9zdDogZXhpdGVkAQdob3N0LTj///9//////////38DAv////8AAAAAAAAAgAAAAIABJmFra2EudGNwOi8vb3JjaGVzdHJhdG9yQDEwLjAuMC44OjQwNTP/////////f/n/////////AQEEdGNnAQRtYXhZZmVsbCBiYWNrIHRvIFRDRzoga3ZtIC1jcHUgaG9zdDogZXhpdGVkIGJlZm9yZSB0aGUgYmFubmVyIChleGl0IGNvZGUgMTM0OiDDvG7Dr2NvZGUg4pyTKQSOKhxvSw1VTJpDH29LjS4BAQVhY21lBndlYi0xBAAAAAAgAAABDXVidW50dS0yNC4wNAIBAQAIAAD0AQAAAbgLAAAABAAAASgjAAABBjAtMyw4BAEEZW52AQVwcm9kAQV0aWVyAQR3ZWIBBW5vdGUBAQUFAQYBKXFlbXUgZXhpdGVkIHdpdGggMTM3OiDDvG7Dr2NvZGUg4pyTIPCfmoABAioAAAAAAAAAAWl6AAAFAAAAgPcgjcZJ3whKAQGA9yCNxknfCCD+AdYGAAAAAAAAETx9Cy9ejUqMGy2ef2pbAgEFYmV0YQZ3ZWItMQEAAAAAAgAADAEBAQIAAAABAAAAAQoAAAABAAAAAQACAAANAhARAwUBCAEJZGVsZXRpbmcBAgEAAAAAAAAAAQEAAAABAAAAgfcgjcZJ3whKAQGAt4q3j0rfCEoBAQEAAAAAAAAA/////////////////////wEHc3lzdGVtBWVkZ2X///9/AAAAgAEGb3RoZXICAQEAAACA////fwEAAACAAAAAgAH///9/AQIxAgECeAECeQUFAQcaAQf/////////fwEAAACA/////wD2gHx1AAAASAMB/z839HUoyisAAAEAAAAAAAAAgAILAQoAAAABKAAAAAEAAAEAAAAAAAGA9yCNxknfCEoBAQEAEAAA0AcAAAFAHwAAAhNrLTAxMjM0NTY3ODlhYmNkZWYLAiE5Zjg2ZDA4MTg4NGM3ZDY1OWEyZmVhYTBjNTVhZDAxNQNjaYD3II3GSd8ISgEBgC9ust9J3whKAQIFd2gtMQsraHR0cHM6Ly9ob29rcy5leGFtcGxlLm9yZy9vcmNoZXN0cmF0b3I/eD0xB3MzY3JldAMBCFZtUmVhZHkBCVZtRmFpbGVkgPcgjcZJ3whKAQIHcnVsZS0xCwhuaWdodGx5AQ1WbVJlc3RhcnRpbmcDAAAAALygZQEAAAABDTAgMjAgKiAqIDEtNQIQEQKA9yCNxknfCEoBW07sT7es4nc=";

    [Fact]
    public void A_version_3_snapshot_from_the_build_before_bootstraps_reads_back_with_none() =>
        AssertOldSnapshotReadsAs(Version3Full, 3, WithoutStorage(BeforePlacement()) with { Vms = WithoutStorage(BeforePlacement()).Vms.Select(vm => vm with { Spec = vm.Spec with { Bootstrap = null } }).ToList() });

    /// <summary><see cref="Full"/> as the build before placement constraints wrote it (layout version 5), from that build.</summary>
    private const string Version5Full =
        "TEVERwVjBgAAAAAAAAMBB2hvc3QtNzAAAAAAAAMAAAAAAAEFcWVtdQMMAAAAAGAAAAAAAAADAAAAASZha2thLnRjcDovL29yY2hlc3RyYXRvckAxMC4wLjAuNzo0MDUz3AUAAAAAAAAACAAAAAAAAAEBBGt2bQEjaG9zdCxhcmNoLWNhcGFiaWxpdGllcz1vZmYscG11PW9mZh1hZnRlcjoga3ZtIC1jcHUgaG9zdDogZXhpdGVkAQdob3N0LTj///9//////////38DAv////8AAAAAAAAAgAAAAIABJmFra2EudGNwOi8vb3JjaGVzdHJhdG9yQDEwLjAuMC44OjQwNTP/////////f/n/////////AQEEdGNnAQRtYXhZZmVsbCBiYWNrIHRvIFRDRzoga3ZtIC1jcHUgaG9zdDogZXhpdGVkIGJlZm9yZSB0aGUgYmFubmVyIChleGl0IGNvZGUgMTM0OiDDvG7Dr2NvZGUg4pyTKQSOKhxvSw1VTJpDH29LjS4BAQVhY21lBndlYi0xBAAAAAAgAAABDXVidW50dS0yNC4wNAIBAQAIAAD0AQAAAbgLAAAABAAAASgjAAABBjAtMyw4BAEEZW52AQVwcm9kAQV0aWVyAQR3ZWIBBW5vdGUBAQUFARJ3ZWItMS5leGFtcGxlLm9yZwMXc3NoLWVkMjU1MTkgQUFBQSBrZXktMRtzc2gtcnNhIEFBQUEgw7xuw69jb2RlIOKckwUB/yMhAQYBKXFlbXUgZXhpdGVkIHdpdGggMTM3OiDDvG7Dr2NvZGUg4pyTIPCfmoABAioAAAAAAAAAAWl6AAAFAAAAgPcgjcZJ3whKAQGA9yCNxknfCCD+AdYGAAAAAAAAETx9Cy9ejUqMGy2ef2pbAgEFYmV0YQZ3ZWItMQEAAAAAAgAADAEBAQIAAAABAAAAAQoAAAABAAAAAQACAAANAhARAwUBBndlYi0xAhdzc2gtZWQyNTUxOSBBQUFBIGtleS0xAgcBCAEJZGVsZXRpbmcBAgEAAAAAAAAAAQEAAAABAAAAgfcgjcZJ3whKAQGAt4q3j0rfCEoBAQEAAAAAAAAA/////////////////////wEHc3lzdGVtBWVkZ2X///9/AAAAgAEGb3RoZXICAQEAAACA////fwEAAACAAAAAgAH///9/AQIxAgECeAECeQUFAQVlZGdlAgJrgAIBAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj9AQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpbXF1eX2BhYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ent8fX5/gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp+goaKjpKWmp6ipqqusra6vsLGys7S1tre4ubq7vL2+v8DBwsPExcbHyMnKy8zNzs/Q0dLT1NXW19jZ2tvc3d7f4OHi4+Tl5ufo6err7O3u7/Dx8vP09fb3+Pn6+/z9/v8BBxoBB/////////9/AQAAAID/////APaAfHUAAABIAwH/Pzf0dSjKKwAAAQAAAAAAAACAAgsBCgAAAAEoAAAAAQAAAQAAAAAAAYD3II3GSd8ISgEBAQAQAADQBwAAAUAfAAACE2stMDEyMzQ1Njc4OWFiY2RlZgsCITlmODZkMDgxODg0YzdkNjU5YTJmZWFhMGM1NWFkMDE1A2NpgPcgjcZJ3whKAQGAL26y30nfCEoBAgV3aC0xCytodHRwczovL2hvb2tzLmV4YW1wbGUub3JnL29yY2hlc3RyYXRvcj94PTEHczNjcmV0AwEIVm1SZWFkeQEJVm1GYWlsZWSA9yCNxknfCEoBAgdydWxlLTELCG5pZ2h0bHkBDVZtUmVzdGFydGluZwMAAAAAvKBlAQAAAAENMCAyMCAqICogMS01AhARAoD3II3GSd8ISgFTVE9SAwEGbG9jYWwBBGRpcgACAAAAAAAAAAAAAAAAEEABAQ5uZnMtw7xuw69jb2RlIf////////9/AAAAAAAA+D8BAgECcgEEcmJkAAAAAAAAAIABAAAAAAAAAAEBFAAAAAEgAQIBAQAAAAEiAQcBAAAAgAEjAQECaFNo2dMH5VRb";

    [Fact]
    public void A_version_5_snapshot_from_the_build_before_placement_constraints_reads_back_with_no_labels_selectors_or_groups() =>
        AssertOldSnapshotReadsAs(Version5Full, 5, BeforePlacement());

    /// <summary><see cref="Full"/> as the build before networks wrote it (layout version 6), from that build.</summary>
    private const string Version6Full =
        "TEVERwbaBgAAAAAAAAMBB2hvc3QtNzAAAAAAAAMAAAAAAAEFcWVtdQMMAAAAAGAAAAAAAAADAAAAASZha2thLnRjcDovL29yY2hlc3RyYXRvckAxMC4wLjAuNzo0MDUz3AUAAAAAAAAACAAAAAAAAAEBBGt2bQEjaG9zdCxhcmNoLWNhcGFiaWxpdGllcz1vZmYscG11PW9mZh1hZnRlcjoga3ZtIC1jcHUgaG9zdDogZXhpdGVkAQdob3N0LTj///9//////////38DAv////8AAAAAAAAAgAAAAIABJmFra2EudGNwOi8vb3JjaGVzdHJhdG9yQDEwLjAuMC44OjQwNTP/////////f/n/////////AQEEdGNnAQRtYXhZZmVsbCBiYWNrIHRvIFRDRzoga3ZtIC1jcHUgaG9zdDogZXhpdGVkIGJlZm9yZSB0aGUgYmFubmVyIChleGl0IGNvZGUgMTM0OiDDvG7Dr2NvZGUg4pyTKQSOKhxvSw1VTJpDH29LjS4BAQVhY21lBndlYi0xBAAAAAAgAAABDXVidW50dS0yNC4wNAIBAQAIAAD0AQAAAbgLAAAABAAAASgjAAABBjAtMyw4BAEEZW52AQVwcm9kAQV0aWVyAQR3ZWIBBW5vdGUBAQUFARJ3ZWItMS5leGFtcGxlLm9yZwMXc3NoLWVkMjU1MTkgQUFBQSBrZXktMRtzc2gtcnNhIEFBQUEgw7xuw69jb2RlIOKckwUB/yMhAQYBKXFlbXUgZXhpdGVkIHdpdGggMTM3OiDDvG7Dr2NvZGUg4pyTIPCfmoABAioAAAAAAAAAAWl6AAAFAAAAgPcgjcZJ3whKAQGA9yCNxknfCCD+AdYGAAAAAAAAETx9Cy9ejUqMGy2ef2pbAgEFYmV0YQZ3ZWItMQEAAAAAAgAADAEBAQIAAAABAAAAAQoAAAABAAAAAQACAAANAhARAwUBBndlYi0xAhdzc2gtZWQyNTUxOSBBQUFBIGtleS0xAgcBCAEJZGVsZXRpbmcBAgEAAAAAAAAAAQEAAAABAAAAgfcgjcZJ3whKAQGAt4q3j0rfCEoBAQEAAAAAAAAA/////////////////////wEHc3lzdGVtBWVkZ2X///9/AAAAgAEGb3RoZXICAQEAAACA////fwEAAACAAAAAgAH///9/AQIxAgECeAECeQUFAQVlZGdlAgJrgAIBAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj9AQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpbXF1eX2BhYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ent8fX5/gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp+goaKjpKWmp6ipqqusra6vsLGys7S1tre4ubq7vL2+v8DBwsPExcbHyMnKy8zNzs/Q0dLT1NXW19jZ2tvc3d7f4OHi4+Tl5ufo6err7O3u7/Dx8vP09fb3+Pn6+/z9/v8BBxoBB/////////9/AQAAAID/////APaAfHUAAABIAwH/Pzf0dSjKKwAAAQAAAAAAAACAAgsBCgAAAAEoAAAAAQAAAQAAAAAAAYD3II3GSd8ISgEBAQAQAADQBwAAAUAfAAACE2stMDEyMzQ1Njc4OWFiY2RlZgsCITlmODZkMDgxODg0YzdkNjU5YTJmZWFhMGM1NWFkMDE1A2NpgPcgjcZJ3whKAQGAL26y30nfCEoBAgV3aC0xCytodHRwczovL2hvb2tzLmV4YW1wbGUub3JnL29yY2hlc3RyYXRvcj94PTEHczNjcmV0AwEIVm1SZWFkeQEJVm1GYWlsZWSA9yCNxknfCEoBAgdydWxlLTELCG5pZ2h0bHkBDVZtUmVzdGFydGluZwMAAAAAvKBlAQAAAAENMCAyMCAqICogMS01AhARAoD3II3GSd8ISgFTVE9SAwEGbG9jYWwBBGRpcgACAAAAAAAAAAAAAAAAEEABAQ5uZnMtw7xuw69jb2RlIf////////9/AAAAAAAA+D8BAgECcgEEcmJkAAAAAAAAAIABAAAAAAAAAAEBFAAAAAEgAQIBAQAAAAEiAQcBAAAAgAEjAQECaAMDAQV6b25lAQN6MAEEc3NkEwMmAQN6MSgTBAUBB3pvbmU9YSgBBSFncHUBCXJhY2shPXIwEQUqKCsBCXJhY2shPXIxAQNkYgUqKCsBCXJhY2shPXIyEQMLBHdlYgKA9yCNxknfCEoBFQNkYgGAN7di/UjfCEoBF6nHIKjVIcA=";

    [Fact]
    public void A_version_6_snapshot_from_the_build_before_networks_reads_back_with_no_networks_or_nics() =>
        AssertOldSnapshotReadsAs(Version6Full, 6, WithoutVolumes(Full()) with
        {
            Vms = WithoutVolumes(Full()).Vms.Select(vm => vm with { Spec = vm.Spec with { Nics = null } }).ToList(), Networks = null,
            IdempotencyKeys = null,
        });

    /// <summary><see cref="Full"/> as the build before durable idempotency keys wrote it (layout version 7), from that build.</summary>
    private const string Version7Full =
        "TEVERwfyBwAAAAAAAAMBB2hvc3QtNzAAAAAAAAMAAAAAAAEFcWVtdQMMAAAAAGAAAAAAAAADAAAAASZha2thLnRjcDovL29yY2hlc3RyYXRvckAxMC4wLjAuNzo0MDUz3AUAAAAAAAAACAAAAAAAAAEBBGt2bQEjaG9zdCxhcmNoLWNhcGFiaWxpdGllcz1vZmYscG11PW9mZh1hZnRlcjoga3ZtIC1jcHUgaG9zdDogZXhpdGVkAQdob3N0LTj///9//////////38DAv////8AAAAAAAAAgAAAAIABJmFra2EudGNwOi8vb3JjaGVzdHJhdG9yQDEwLjAuMC44OjQwNTP/////////f/n/////////AQEEdGNnAQRtYXhZZmVsbCBiYWNrIHRvIFRDRzoga3ZtIC1jcHUgaG9zdDogZXhpdGVkIGJlZm9yZSB0aGUgYmFubmVyIChleGl0IGNvZGUgMTM0OiDDvG7Dr2NvZGUg4pyTKQSOKhxvSw1VTJpDH29LjS4BAQVhY21lBndlYi0xBAAAAAAgAAABDXVidW50dS0yNC4wNAIBAQAIAAD0AQAAAbgLAAAABAAAASgjAAABBjAtMyw4BAEEZW52AQVwcm9kAQV0aWVyAQR3ZWIBBW5vdGUBAQUFARJ3ZWItMS5leGFtcGxlLm9yZwMXc3NoLWVkMjU1MTkgQUFBQSBrZXktMRtzc2gtcnNhIEFBQUEgw7xuw69jb2RlIOKckwUB/yMhAQYBKXFlbXUgZXhpdGVkIHdpdGggMTM3OiDDvG7Dr2NvZGUg4pyTIPCfmoABAioAAAAAAAAAAWl6AAAFAAAAgPcgjcZJ3whKAQGA9yCNxknfCCD+AdYGAAAAAAAAETx9Cy9ejUqMGy2ef2pbAgEFYmV0YQZ3ZWItMQEAAAAAAgAADAEBAQIAAAABAAAAAQoAAAABAAAAAQACAAANAhARAwUBBndlYi0xAhdzc2gtZWQyNTUxOSBBQUFBIGtleS0xAgcBCAEJZGVsZXRpbmcBAgEAAAAAAAAAAQEAAAABAAAAgfcgjcZJ3whKAQGAt4q3j0rfCEoBAQEAAAAAAAAA/////////////////////wEHc3lzdGVtBWVkZ2X///9/AAAAgAEGb3RoZXICAQEAAACA////fwEAAACAAAAAgAH///9/AQIxAgECeAECeQUFAQVlZGdlAgJrgAIBAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj9AQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpbXF1eX2BhYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ent8fX5/gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp+goaKjpKWmp6ipqqusra6vsLGys7S1tre4ubq7vL2+v8DBwsPExcbHyMnKy8zNzs/Q0dLT1NXW19jZ2tvc3d7f4OHi4+Tl5ufo6err7O3u7/Dx8vP09fb3+Pn6+/z9/v8BBxoBB/////////9/AQAAAID/////APaAfHUAAABIAwH/Pzf0dSjKKwAAAQAAAAAAAACAAgsBCgAAAAEoAAAAAQAAAQAAAAAAAYD3II3GSd8ISgEBAQAQAADQBwAAAUAfAAACE2stMDEyMzQ1Njc4OWFiY2RlZgsCITlmODZkMDgxODg0YzdkNjU5YTJmZWFhMGM1NWFkMDE1A2NpgPcgjcZJ3whKAQGAL26y30nfCEoBAgV3aC0xCytodHRwczovL2hvb2tzLmV4YW1wbGUub3JnL29yY2hlc3RyYXRvcj94PTEHczNjcmV0AwEIVm1SZWFkeQEJVm1GYWlsZWSA9yCNxknfCEoBAgdydWxlLTELCG5pZ2h0bHkBDVZtUmVzdGFydGluZwMAAAAAvKBlAQAAAAENMCAyMCAqICogMS01AhARAoD3II3GSd8ISgFTVE9SAwEGbG9jYWwBBGRpcgACAAAAAAAAAAAAAAAAEEABAQ5uZnMtw7xuw69jb2RlIf////////9/AAAAAAAA+D8BAgECcgEEcmJkAAAAAAAAAIABAAAAAAAAAAEBFAAAAAEgAQIBAQAAAAEiAQcBAAAAgAEjAQECaAMDAQV6b25lAQN6MAEEc3NkEwMmAQN6MSgTBAUBB3pvbmU9YSgBBSFncHUBCXJhY2shPXIwEQUqKCsBCXJhY2shPXIxAQNkYgUqKCsBCXJhY2shPXIyEQMLBHdlYgKA9yCNxknfCEoBFQNkYgGAN7di/UjfCEoBAwZuZXQtMQsEbmV0AQwxMC4wLjAuMC8yNAH///8AgPcgjcZJ3whKAQZuZXQtMgsFYmFjawEPMTkyLjE2OC4wLjAvMTYBAQAAAID3II3GSd8ISgEEjiocb0sNVUyaQx9vS40uAQMBBG5ldAkxMC4wLjAuMhIwMjowMDowMDowMDowMDowMQEFYmFjawwxOTIuMTY4LjcuORIwMjpmZjowMDowMDowMDowMhE8fQsvXo1KjBstnn9qWwICMgkxMC4wLjAuMxIwMjowMDowMDowMDowMDowM/////////////////////8CAQ7DvG7Dr2NvZGUg4pyTEDI1NS4yNTUuMjU1LjI1NRJmZjpmZjpmZjpmZjpmZjpmZsqB1UhLARqU";

    [Fact]
    public void A_version_7_snapshot_from_the_build_before_durable_idempotency_keys_reads_back_with_none() =>
        AssertOldSnapshotReadsAs(Version7Full, 7, WithoutVolumes(Full()) with { IdempotencyKeys = null });

    /// <summary><see cref="Full"/> as the build before volumes wrote it (layout version 8), from that build.</summary>
    private const string Version8Full =
        "TEVERwhLCAAAAAAAAAMBB2hvc3QtNzAAAAAAAAMAAAAAAAEFcWVtdQMMAAAAAGAAAAAAAAADAAAAASZha2thLnRjcDovL29yY2hlc3RyYXRvckAxMC4wLjAuNzo0MDUz3AUAAAAAAAAACAAAAAAAAAEBBGt2bQEjaG9zdCxhcmNoLWNhcGFiaWxpdGllcz1vZmYscG11PW9mZh1hZnRlcjoga3ZtIC1jcHUgaG9zdDogZXhpdGVkAQdob3N0LTj///9//////////38DAv////8AAAAAAAAAgAAAAIABJmFra2EudGNwOi8vb3JjaGVzdHJhdG9yQDEwLjAuMC44OjQwNTP/////////f/n/////////AQEEdGNnAQRtYXhZZmVsbCBiYWNrIHRvIFRDRzoga3ZtIC1jcHUgaG9zdDogZXhpdGVkIGJlZm9yZSB0aGUgYmFubmVyIChleGl0IGNvZGUgMTM0OiDDvG7Dr2NvZGUg4pyTKQSOKhxvSw1VTJpDH29LjS4BAQVhY21lBndlYi0xBAAAAAAgAAABDXVidW50dS0yNC4wNAIBAQAIAAD0AQAAAbgLAAAABAAAASgjAAABBjAtMyw4BAEEZW52AQVwcm9kAQV0aWVyAQR3ZWIBBW5vdGUBAQUFARJ3ZWItMS5leGFtcGxlLm9yZwMXc3NoLWVkMjU1MTkgQUFBQSBrZXktMRtzc2gtcnNhIEFBQUEgw7xuw69jb2RlIOKckwUB/yMhAQYBKXFlbXUgZXhpdGVkIHdpdGggMTM3OiDDvG7Dr2NvZGUg4pyTIPCfmoABAioAAAAAAAAAAWl6AAAFAAAAgPcgjcZJ3whKAQGA9yCNxknfCCD+AdYGAAAAAAAAETx9Cy9ejUqMGy2ef2pbAgEFYmV0YQZ3ZWItMQEAAAAAAgAADAEBAQIAAAABAAAAAQoAAAABAAAAAQACAAANAhARAwUBBndlYi0xAhdzc2gtZWQyNTUxOSBBQUFBIGtleS0xAgcBCAEJZGVsZXRpbmcBAgEAAAAAAAAAAQEAAAABAAAAgfcgjcZJ3whKAQGAt4q3j0rfCEoBAQEAAAAAAAAA/////////////////////wEHc3lzdGVtBWVkZ2X///9/AAAAgAEGb3RoZXICAQEAAACA////fwEAAACAAAAAgAH///9/AQIxAgECeAECeQUFAQVlZGdlAgJrgAIBAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj9AQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpbXF1eX2BhYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ent8fX5/gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp+goaKjpKWmp6ipqqusra6vsLGys7S1tre4ubq7vL2+v8DBwsPExcbHyMnKy8zNzs/Q0dLT1NXW19jZ2tvc3d7f4OHi4+Tl5ufo6err7O3u7/Dx8vP09fb3+Pn6+/z9/v8BBxoBB/////////9/AQAAAID/////APaAfHUAAABIAwH/Pzf0dSjKKwAAAQAAAAAAAACAAgsBCgAAAAEoAAAAAQAAAQAAAAAAAYD3II3GSd8ISgEBAQAQAADQBwAAAUAfAAACE2stMDEyMzQ1Njc4OWFiY2RlZgsCITlmODZkMDgxODg0YzdkNjU5YTJmZWFhMGM1NWFkMDE1A2NpgPcgjcZJ3whKAQGAL26y30nfCEoBAgV3aC0xCytodHRwczovL2hvb2tzLmV4YW1wbGUub3JnL29yY2hlc3RyYXRvcj94PTEHczNjcmV0AwEIVm1SZWFkeQEJVm1GYWlsZWSA9yCNxknfCEoBAgdydWxlLTELCG5pZ2h0bHkBDVZtUmVzdGFydGluZwMAAAAAvKBlAQAAAAENMCAyMCAqICogMS01AhARAoD3II3GSd8ISgFTVE9SAwEGbG9jYWwBBGRpcgACAAAAAAAAAAAAAAAAEEABAQ5uZnMtw7xuw69jb2RlIf////////9/AAAAAAAA+D8BAgECcgEEcmJkAAAAAAAAAIABAAAAAAAAAAEBFAAAAAEgAQIBAQAAAAEiAQcBAAAAgAEjAQECaAMDAQV6b25lAQN6MAEEc3NkEwMmAQN6MSgTBAUBB3pvbmU9YSgBBSFncHUBCXJhY2shPXIwEQUqKCsBCXJhY2shPXIxAQNkYgUqKCsBCXJhY2shPXIyEQMLBHdlYgKA9yCNxknfCEoBFQNkYgGAN7di/UjfCEoBAwZuZXQtMQsEbmV0AQwxMC4wLjAuMC8yNAH///8AgPcgjcZJ3whKAQZuZXQtMgsFYmFjawEPMTkyLjE2OC4wLjAvMTYBAQAAAID3II3GSd8ISgEEjiocb0sNVUyaQx9vS40uAQMBBG5ldAkxMC4wLjAuMhIwMjowMDowMDowMDowMDowMQEFYmFjawwxOTIuMTY4LjcuORIwMjpmZjowMDowMDowMDowMhE8fQsvXo1KjBstnn9qWwICMgkxMC4wLjAuMxIwMjowMDowMDowMDowMDowM/////////////////////8CAQ7DvG7Dr2NvZGUg4pyTEDI1NS4yNTUuMjU1LjI1NRJmZjpmZjpmZjpmZjpmZjpmZgMROWY4NmQwODE4ODRjN2Q2NQ7DvG7Dr2NvZGUg4pyTjiocb0sNVUyaQx9vS40uAYD3II3GSd8ISgEDazICYv//////////////////////Pzf0dSjKKwAArm7ipyumM/s=";

    [Fact]
    public void A_version_8_snapshot_from_the_build_before_volumes_reads_back_with_no_volumes_or_storage_quota() =>
        AssertOldSnapshotReadsAs(Version8Full, 8, WithoutVolumes(Full()));

    [Fact]
    public void A_version_9_snapshot_from_the_build_before_disk_snapshots_reads_back_with_none()
    {
        // Version 9 wrote everything this build writes up to the snapshots section, which it did not have (nor the later ones).
        var expected = WithoutSnapshots(WithoutSecurityGroups(Full()));
        AssertWrittenUpToReadsAs("SNAP"u8, 9, expected);
    }

    [Fact]
    public void A_version_10_snapshot_from_the_build_before_security_groups_reads_back_with_none()
    {
        // Version 10 wrote everything this build writes up to the security groups section, which it did not have.
        var expected = WithoutSecurityGroups(Full());
        AssertWrittenUpToReadsAs("SECG"u8, 10, expected);
    }

    [Fact]
    public void A_version_11_snapshot_from_the_build_before_count_quotas_forwards_and_disk_limits_reads_back_with_none()
    {
        // Version 11 wrote everything this build writes up to the count quotas section, which it did not have (nor the two after it).
        AssertWrittenUpToReadsAs("QUOT"u8, 11, WithoutVersion12(Full()));
    }

    [Fact]
    public void A_version_12_snapshot_from_the_build_before_imported_images_reads_back_with_none()
    {
        // Version 12 wrote everything this build writes up to the images section, which it did not have.
        AssertWrittenUpToReadsAs("IMGS"u8, 12, WithoutNetLimits(WithoutImages(Full())));
    }

    [Fact]
    public void A_version_13_snapshot_from_the_build_before_network_limits_reads_back_with_none()
    {
        // Version 13 wrote everything this build writes up to the network limits section, which it did not have.
        AssertWrittenUpToReadsAs("NETL"u8, 13, WithoutNetLimits(Full()));
    }

    [Fact]
    public void A_version_14_snapshot_from_the_build_before_chunked_vms_reads_back_the_same() =>
        AssertOldSnapshotReadsAs(Convert.ToBase64String(LedgerSnapshotFormat.Write(Full(), version: 14)), 14, Full());

    [Fact]
    public void A_version_15_snapshot_from_the_build_before_incremental_snapshots_reads_back_whole() =>
        AssertOldSnapshotReadsAs(Convert.ToBase64String(LedgerSnapshotFormat.Write(Full(), version: 15)), 15, Full());

    [Fact]
    public void An_incremental_snapshot_reads_back_with_what_it_builds_on_and_what_it_removed()
    {
        var delta = new SnapshotDelta(4_000_000_123, [new HostId("host-gone")], [VmId.New(), VmId.New()]);
        var snapshot = Full() with { Delta = delta };

        var read = LedgerSnapshotFormat.Read(LedgerSnapshotFormat.Write(snapshot));

        Assert.Equal(Json(snapshot), Json(read));
        Assert.Equal(delta.RemovedVms, read.Delta!.RemovedVms);
        Assert.Null(LedgerSnapshotFormat.Read(LedgerSnapshotFormat.Write(Full())).Delta);
    }

    [Fact]
    public void VMs_over_many_chunks_read_back_in_order_each_chunk_with_its_own_shared_strings()
    {
        var template = Full().Vms[0];
        var vms = Enumerable.Range(0, 40_000).Select(i => template with
        {
            Id = new VmId(new Guid(i + 1, 0, 0, new byte[8])),
            Tenant = new TenantId($"t{i % 7}"),
            Host = new HostId($"h{i % 13}"),
            Spec = template.Spec with { Name = $"vm-{i}" },
        }).ToList();
        var snapshot = new LedgerSnapshot([], vms);

        var read = LedgerSnapshotFormat.Read(LedgerSnapshotFormat.Write(snapshot));

        Assert.Equal(Json(snapshot), Json(read));
    }

    /// <summary>This build's snapshot of <paramref name="expected"/> cut before the section <paramref name="marker"/> opens, as the older <paramref name="version"/> wrote it.</summary>
    private static void AssertWrittenUpToReadsAs(ReadOnlySpan<byte> marker, byte version, LedgerSnapshot expected)
    {
        var current = LedgerSnapshotFormat.Write(expected, version: 14);
        var older = Reseal(current[..current.AsSpan().LastIndexOf(marker)]);
        older[4] = version;
        AssertOldSnapshotReadsAs(Convert.ToBase64String(Reseal(older[..^8])), version, expected);
    }

    /// <summary>A snapshot as builds before storage (layout version 5) read it back: no pools, no disks.</summary>
    private static LedgerSnapshot WithoutStorage(LedgerSnapshot snapshot) => snapshot with
    {
        Hosts = snapshot.Hosts.Select(h => h with { Pools = null }).ToList(),
        Vms = snapshot.Vms.Select(vm => vm with { Spec = vm.Spec with { DiskGiB = null }, Disk = null }).ToList(),
    };

    /// <summary>An older build's snapshot reads back as <paramref name="expected"/>, and is written again in this build's version.</summary>
    private static void AssertOldSnapshotReadsAs(string base64, byte version, LedgerSnapshot expected)
    {
        var bytes = Convert.FromBase64String(base64);
        Assert.Equal(version, bytes[4]);

        var read = LedgerSnapshotFormat.Read(bytes);

        Assert.Equal(Json(expected), Json(read));
        Assert.Equal(LedgerSnapshotFormat.Version, LedgerSnapshotFormat.Write(read)[4]);
    }

    [Fact]
    public void A_truncated_snapshot_fails_saying_so_at_every_length()
    {
        var bytes = LedgerSnapshotFormat.Write(Full());
        for (var length = 0; length < bytes.Length; length++)
        {
            var error = Assert.Throws<SerializationException>(() => LedgerSnapshotFormat.Read(bytes[..length]));
            Assert.Contains("truncated", error.Message);
        }
    }

    [Fact]
    public void A_damaged_byte_anywhere_fails_the_whole_snapshot()
    {
        var bytes = LedgerSnapshotFormat.Write(Full());
        for (var i = 0; i < bytes.Length; i++)
        {
            var damaged = bytes.ToArray();
            damaged[i] ^= 0x20;
            Assert.Throws<SerializationException>(() => LedgerSnapshotFormat.Read(damaged));
        }

        var body = bytes.ToArray();
        body[100] ^= 0x01;
        Assert.Contains("do not match their checksum", Assert.Throws<SerializationException>(() => LedgerSnapshotFormat.Read(body)).Message);
        var version = bytes.ToArray();
        version[4] = LedgerSnapshotFormat.Version + 1;
        Assert.Contains($"version {LedgerSnapshotFormat.Version + 1}", Assert.Throws<SerializationException>(() => LedgerSnapshotFormat.Read(version)).Message);
        var json = System.Text.Encoding.UTF8.GetBytes(LegacySnapshot.Json);
        Assert.Contains("not a binary ledger snapshot", Assert.Throws<SerializationException>(() => LedgerSnapshotFormat.Read(json)).Message);
    }

    [Fact]
    public void A_payload_sealed_whole_but_cut_inside_a_record_names_the_record()
    {
        var bytes = LedgerSnapshotFormat.Write(new LedgerSnapshot([], BeforePlacement().Vms));
        // The VMs section ends where the (null) tenants' list starts, four null lists before the storage section's marker:
        // cut the last VM's final bytes off and reseal.
        var cut = Reseal(bytes[..(bytes.AsSpan().IndexOf("STOR"u8) - 4 - 5)]);
        var error = Assert.Throws<SerializationException>(() => LedgerSnapshotFormat.Read(cut));
        Assert.Contains("VM #2", error.Message);
        Assert.Contains("truncated", error.Message);
    }

    [Fact]
    public void A_payload_sealed_whole_but_holding_nonsense_names_the_record_and_the_field()
    {
        var vm = Full().Vms[0] with { Epoch = new Epoch(0x0123456789ABCDEF) };
        var bytes = LedgerSnapshotFormat.Write(new LedgerSnapshot([], [vm]));
        var epoch = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(epoch, vm.Epoch.Value);
        var at = bytes.AsSpan().IndexOf(epoch) + epoch.Length;
        bytes[at] = 7; // where the Pid's presence (a boolean) is
        var error = Assert.Throws<SerializationException>(() => LedgerSnapshotFormat.Read(Reseal(bytes)));
        Assert.Contains("VM #0", error.Message);
        Assert.Contains("7 is not a boolean", error.Message);

        var trailing = Reseal([.. LedgerSnapshotFormat.Write(new LedgerSnapshot([], []))[..^8], 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        Assert.Contains("bytes after the last record", Assert.Throws<SerializationException>(() => LedgerSnapshotFormat.Read(trailing)).Message);
    }

    [Fact]
    public void A_corrupt_snapshot_fails_through_the_configured_serializer_too()
    {
        var serializer = (SerializerWithStringManifest)Sys.Serialization.FindSerializerFor(Full());
        var bytes = serializer.ToBinary(Full());
        var error = Assert.Throws<SerializationException>(() =>
            Sys.Serialization.Deserialize(bytes[..^1], serializer.Identifier, LedgerSnapshotFormat.Manifest));
        Assert.Contains("truncated", error.Message);
    }

    private LedgerSnapshot RoundTrip(LedgerSnapshot snapshot)
    {
        var serializer = Sys.Serialization.FindSerializerFor(snapshot);
        return (LedgerSnapshot)Sys.Serialization.Deserialize(serializer.ToBinary(snapshot), serializer.Identifier,
            Akka.Serialization.Serialization.ManifestFor(serializer, snapshot));
    }

    private static LedgerState State(LedgerSnapshot s) => LedgerState.FromRecords(s.Hosts, s.Vms, s.Tenants, s.Keys, s.Webhooks, s.Rules);

    /// <summary>The payload with its length and checksum made right again: what is wrong is then only inside.</summary>
    private static byte[] Reseal(byte[] payload)
    {
        var bytes = payload.Length >= 8 + 13 ? payload.ToArray() : throw new ArgumentException("too short to reseal");
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(5), bytes.Length + 8);
        var hash = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(hash, XxHash3.HashToUInt64(bytes));
        return [.. bytes, .. hash];
    }

    // Records holding lists and dictionaries compare them by reference; their JSON compares them by value.
    private static string Json(object o) => System.Text.Json.JsonSerializer.Serialize(o, o.GetType(), OrchestratorSerializer.Json);

    /// <summary>A record's data: its public properties that can be set (the computed ones only have a getter).</summary>
    private static IEnumerable<PropertyInfo> DataProperties(Type type) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.SetMethod is not null);

    /// <summary>The project's own types a snapshot holds, directly or inside lists, dictionaries and nullables.</summary>
    private static HashSet<Type> RecordTypesIn(Type root)
    {
        var found = new HashSet<Type>();
        var pending = new Stack<Type>([root]);
        while (pending.TryPop(out var type))
        {
            if (!found.Add(type))
            {
                continue;
            }

            foreach (var property in DataProperties(type))
            {
                foreach (var inner in Unwrap(property.PropertyType).Where(t => t.Namespace?.StartsWith("Orchestrator", StringComparison.Ordinal) == true && !t.IsEnum))
                {
                    pending.Push(inner);
                }
            }
        }

        return found;

        static IEnumerable<Type> Unwrap(Type t) => Nullable.GetUnderlyingType(t) is { } underlying ? [underlying]
            : t.IsGenericType ? t.GetGenericArguments().SelectMany(Unwrap)
            : [t];
    }

    /// <summary>Paths to every property left null, empty, zero or otherwise default, walking into records and lists.</summary>
    private static IEnumerable<string> DefaultsIn(object? value, Type type, string path)
    {
        var plain = Nullable.GetUnderlyingType(type) ?? type;
        if (value is null || (plain.IsValueType && value.Equals(Activator.CreateInstance(plain))) || value is string { Length: 0 })
        {
            return [path];
        }

        if (value is string)
        {
            return [];
        }

        if (value is IEnumerable items)
        {
            var list = items.Cast<object>().ToList();
            return list.Count == 0 ? [path]
                : value is IDictionary ? []
                : list.SelectMany((item, i) => DefaultsIn(item, item.GetType(), $"{path}[{i}]"));
        }

        return LedgerSnapshotFormat.Covered.ContainsKey(plain)
            ? DataProperties(plain).SelectMany(p => DefaultsIn(p.GetValue(value), p.PropertyType, $"{path}.{p.Name}"))
            : [];
    }

    /// <summary>Every (tenant, name, VM) the state's names hold, in one order.</summary>
    private static List<(string Tenant, string Name, Guid Vm)> AllNames(LedgerState state) =>
        state.Names.SelectMany(t => t.Value.Select(n => (t.Key.Value, n.Key, n.Value.Value)))
            .OrderBy(n => n.Item1, StringComparer.Ordinal).ThenBy(n => n.Item2, StringComparer.Ordinal).ToList();
}

/// <summary>A snapshot as the JSON format stored it (before the binary one), and the records it holds.</summary>
internal static class LegacySnapshot
{
    /// <summary>The manifest JSON snapshots were stored under: the type's name.</summary>
    public const string Manifest = "LedgerSnapshot";

    private static readonly DateTimeOffset At = new(2026, 3, 1, 9, 30, 0, TimeSpan.FromHours(1));

    public static readonly LedgerSnapshot Expected = new(
        [new HostRecord(new HostId("host-1"), 16, 65536, "qemu", HostState.Up, 3, 4096, 2, "akka.tcp://orchestrator@10.0.0.1:4053", 500, 1024)],
        [
            new VmRecord(new VmId(Guid.Parse("6f1c2a8e-0d4b-4c55-9a43-1f6f4b8d2e01")), new TenantId("acme"),
                new VmSpec("web-1", 2, 2048, "ubuntu", RestartPolicy.Always, new VmResources(2048, 500, 1500, 1024, 4096, "0-1"),
                    new Dictionary<string, string> { ["env"] = "prod", ["tier"] = "web" }),
                DesiredState.Running, VmStatus.Ready, null, new HostId("host-1"), new Epoch(3), 4242, 1, At, At.AddMinutes(1), 750),
            new VmRecord(new VmId(Guid.Parse("0b7d3c11-5e2f-4a8d-8c1b-2d9e7f6a5b02")), TenantId.System,
                new VmSpec("batch", 1, 2048, "ubuntu"), DesiredState.Stopped, VmStatus.Pending, "no host has room", null, Epoch.Zero, null, 0, At, null),
        ],
        [new TenantRecord(new TenantId("acme"), new TenantQuota(10, 20, 40960), false, At, new TenantCpuPool(4096, 1000, 8000))],
        [new ApiKeyRecord("k-0123456789abcdef", new TenantId("acme"), KeyRole.Member, "9f86d081884c7d65", "ci", At, At.AddDays(2))],
        [new WebhookRecord("wh-1", new TenantId("acme"), "https://hooks.example.org/orc", "s3cret", ["VmReady", "VmFailed"], At)],
        [
            new RuleRecord("rule-1", new TenantId("acme"), "evening", null, 1, TimeSpan.Zero, "0 20 * * 1-5",
                new Dictionary<string, string> { ["env"] = "dev" }, RuleAction.Stop, At),
        ]);

    /// <summary>Written by the JSON serializer as it stood; frozen here, so a change that stops it reading fails a test.</summary>
    public const string Json = """
        {"Hosts":[{"Id":{"Value":"host-1"},"Cpus":16,"MemoryMiB":65536,"Driver":"qemu","State":"Up","AllocatedVcpus":3,"AllocatedMemoryMiB":4096,"VmCount":2,"Address":"akka.tcp://orchestrator@10.0.0.1:4053","ReservedCpuMillicores":500,"ReservedMemoryMiB":1024,"CpuMillicores":16000}],"Vms":[{"Id":{"Value":"6f1c2a8e-0d4b-4c55-9a43-1f6f4b8d2e01","Compact":"6f1c2a8e0d4b4c559a431f6f4b8d2e01"},"Tenant":{"Value":"acme"},"Spec":{"Name":"web-1","Vcpus":2,"MemoryMiB":2048,"Image":"ubuntu","RestartPolicy":"Always","Resources":{"CpuShares":2048,"CpuReservationMillicores":500,"CpuLimitMillicores":1500,"MemoryReservationMiB":1024,"MemoryLimitMiB":4096,"Cpuset":"0-1"},"Labels":{"env":"prod","tier":"web"},"EffectiveResources":{"CpuShares":2048,"CpuReservationMillicores":500,"CpuLimitMillicores":1500,"MemoryReservationMiB":1024,"MemoryLimitMiB":4096,"Cpuset":"0-1"},"EffectiveLabels":{"env":"prod","tier":"web"}},"Desired":"Running","Status":"Ready","Reason":null,"Host":{"Value":"host-1"},"Epoch":{"Value":3},"Pid":4242,"Restarts":1,"CreatedAt":"2026-03-01T09:30:00+01:00","ReadyAt":"2026-03-01T09:31:00+01:00","EntitledCpuMillicores":750,"HoldsAllocation":true},{"Id":{"Value":"0b7d3c11-5e2f-4a8d-8c1b-2d9e7f6a5b02","Compact":"0b7d3c115e2f4a8d8c1b2d9e7f6a5b02"},"Tenant":{"Value":"system"},"Spec":{"Name":"batch","Vcpus":1,"MemoryMiB":2048,"Image":"ubuntu","RestartPolicy":"OnFailure","Resources":null,"Labels":null,"EffectiveResources":{"CpuShares":null,"CpuReservationMillicores":0,"CpuLimitMillicores":null,"MemoryReservationMiB":0,"MemoryLimitMiB":null,"Cpuset":null},"EffectiveLabels":{}},"Desired":"Stopped","Status":"Pending","Reason":"no host has room","Host":null,"Epoch":{"Value":0},"Pid":null,"Restarts":0,"CreatedAt":"2026-03-01T09:30:00+01:00","ReadyAt":null,"EntitledCpuMillicores":null,"HoldsAllocation":false}],"Tenants":[{"Id":{"Value":"acme"},"Quota":{"MaxVms":10,"MaxVcpus":20,"MaxMemoryMiB":40960},"Disabled":false,"CreatedAt":"2026-03-01T09:30:00+01:00","Pool":{"Shares":4096,"ReservationMillicores":1000,"LimitMillicores":8000}}],"Keys":[{"KeyId":"k-0123456789abcdef","Tenant":{"Value":"acme"},"Role":"Member","SecretHash":"9f86d081884c7d65","Name":"ci","CreatedAt":"2026-03-01T09:30:00+01:00","RevokedAt":"2026-03-03T09:30:00+01:00","IsRevoked":true}],"Webhooks":[{"Id":"wh-1","Tenant":{"Value":"acme"},"Url":"https://hooks.example.org/orc","Secret":"s3cret","EventTypes":["VmReady","VmFailed"],"CreatedAt":"2026-03-01T09:30:00+01:00"}],"Rules":[{"Id":"rule-1","Tenant":{"Value":"acme"},"Name":"evening","OnEvent":null,"Count":1,"Within":"00:00:00","Schedule":"0 20 * * 1-5","Selector":{"env":"dev"},"Action":"Stop","CreatedAt":"2026-03-01T09:30:00+01:00"}]}
        """;
}
