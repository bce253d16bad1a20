using Orchestrator.Hypervisor.Storage;

namespace Orchestrator.Hypervisor.Tests;

/// <summary>How a pool's disk name becomes QEMU's file node: a host file, or an image in a Ceph pool.</summary>
public sealed class BlockFilesTests
{
    private static readonly string Rbd = new BlockFiles.Rbd("vms", "disk-0123", "/etc/ceph/ceph.conf", "orchestrator").ToString();

    [Fact]
    public void A_path_is_a_file_node_with_its_commas_escaped()
    {
        Assert.Equal("driver=file,filename=/p/a,,b.qcow2", BlockFiles.CommandLineOptions("/p/a,b.qcow2"));
        Assert.Equal("file.driver=file,file.filename=/p/x", BlockFiles.CommandLineOptions("/p/x", "file."));
        Assert.Equal(new Dictionary<string, object> { ["driver"] = "file", ["filename"] = "/p/a,b" }, BlockFiles.QmpOptions("/p/a,b"));
    }

    [Fact]
    public void An_rbd_name_round_trips_and_becomes_an_rbd_node_in_both_forms()
    {
        Assert.Equal("rbd:vms/disk-0123:conf=/etc/ceph/ceph.conf:id=orchestrator", Rbd);
        Assert.Equal(new BlockFiles.Rbd("vms", "disk-0123", "/etc/ceph/ceph.conf", "orchestrator"), BlockFiles.Rbd.TryParse(Rbd));
        Assert.Equal("driver=rbd,pool=vms,image=disk-0123,conf=/etc/ceph/ceph.conf,user=orchestrator", BlockFiles.CommandLineOptions(Rbd));
        Assert.Equal(new Dictionary<string, object>
        {
            ["driver"] = "rbd", ["pool"] = "vms", ["image"] = "disk-0123", ["conf"] = "/etc/ceph/ceph.conf", ["user"] = "orchestrator",
        }, BlockFiles.QmpOptions(Rbd));
        Assert.Null(BlockFiles.Rbd.TryParse("/var/lib/pool/disks/x.qcow2"));
    }

    [Fact]
    public void Qemus_json_report_of_an_rbd_node_is_the_same_disk_and_another_image_is_not()
    {
        const string reported = """json:{"driver": "qcow2", "file": {"pool": "vms", "image": "disk-0123", "conf": "/etc/ceph/ceph.conf", "driver": "rbd", "namespace": ""}}""";
        Assert.True(BlockFiles.SameFile(reported, Rbd));
        Assert.False(BlockFiles.SameFile(reported.Replace("disk-0123", "disk-9999", StringComparison.Ordinal), Rbd));
        Assert.False(BlockFiles.SameFile(null, Rbd));
        Assert.True(BlockFiles.SameFile("/p/x.qcow2", "/p/x.qcow2"));
    }
}
